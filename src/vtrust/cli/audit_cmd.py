"""``vtrust audit``: one model of any format as it would be deployed — extraction,
detection, watermark and proofs in one report."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import (
    ATTACK_HELP,
    DEFENSE_HELP,
    data_option,
    emit_json,
    model_options,
    simulation_seed_option,
)
from vtrust.cli.common import INPUT_FILE as _FILE


@click.command()
@click.argument("model_file", type=_FILE)
@click.option(
    "--defense",
    "defenses",
    multiple=True,
    help=DEFENSE_HELP[:-1] + "; default: the 'default' preset, 'none': the bare model.",
)
@click.option("--key", "key_file", type=_FILE, default=None, help="Watermark key to verify.")
@click.option(
    "--budget",
    type=click.IntRange(min=10),
    default=None,
    help="Queries per extraction attack [default: 1000; 300 with --quick].",
)
@click.option(
    "--attack",
    "attacks",
    multiple=True,
    help=ATTACK_HELP[:-1] + "; default: the audit set.",
)
@click.option(
    "--quick", is_flag=True, help="A smoke audit: two attacks, 300 queries, a two-point curve."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.md, report.json and fidelity.png here.",
)
@simulation_seed_option
@data_option
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def audit(
    model_file, defenses, key_file, budget, attacks, quick, out, seed, data, options, as_json
) -> None:
    """Queries to 90 % fidelity per attack, whether PRADA or the shift detector would have
    caught it, watermark status (with --key), and whether a proof verifies; for any model
    format (ONNX, TFLite, TorchScript, … with --data), saying which parts were skipped."""
    from vtrust.cli.common import target_splits
    from vtrust.evaluation.audit import AuditPlan, audit_report, audit_target, verdict_lines

    if quick:
        plan = AuditPlan.quick(tuple(attacks), budget)
    else:
        plan = AuditPlan(tuple(attacks) or AuditPlan.attacks, budget or AuditPlan.budget)
    from vtrust.evaluation.audit import DEFAULT_DEFENSES

    target, splits = target_splits(model_file, data, options)
    result = audit_target(target, splits, plan=plan, defenses=tuple(defenses) or
                          DEFAULT_DEFENSES, key_file=key_file, seed=seed)  # fmt: skip
    if out is not None:
        audit_report(result).write(out, result)
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"audit of {model_file} ({result['architecture']}, "
        f"{'white' if target.white_box else 'black'} box, test accuracy "
        f"{result['accuracy']:.4f}), deployed with "
        f"{', '.join(result['defenses']) or 'no defenses'}; {plan.budget} queries per attack"
    )
    click.echo(f"  {'attack':<24} {'fidelity':>8} {'to 90 %':>8}  caught by")
    for row in result["extraction"]:
        reach = row["queries_to_90_fidelity"]
        caught = [f"{n} @ {f['at_query']}" for n, f in row["caught_by"].items() if f["flagged"]]
        reach_text = "never" if reach is None else str(reach)
        click.echo(
            f"  {row['attack']:<24} {row['fidelity']:>8.3f} {reach_text:>8}  "
            f"{', '.join(caught) or '—'}"
        )
    for line in verdict_lines(result):
        click.echo(f"  {line}")
    for part, why in sorted(result["skipped"].items()):
        click.echo(f"  skipped {part}: {why}")
