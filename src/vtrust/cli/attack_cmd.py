"""``vtrust attack list`` and ``vtrust attack run``."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import (
    DEFENSE_HELP,
    Group,
    data_option,
    echo_listing,
    emit_json,
    model_options,
    simulation_seed_option,
    target_splits,
)


@click.group(cls=Group)
def attack() -> None:
    """Model-extraction and removal attacks from the catalog."""


@attack.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attack_list(as_json: bool) -> None:
    """List the named attack configurations (the names `attack run`, `audit`, `gate` and
    `watermark robustness` take)."""
    from vtrust.catalog import listing

    entries = listing("attacks")
    if as_json:
        emit_json({"attacks": [e.to_json() for e in entries]})
        return
    echo_listing(entries)


@attack.command("run")
@click.argument("name_or_toml")
@click.option(
    "--target",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Model file of the victim: vtrust, ONNX, TFLite, TorchScript, torch.export, or a "
    "state dict with --arch-module.",
)
@click.option("--defense", "defenses", multiple=True, help=DEFENSE_HELP)
@click.option("--labels", is_flag=True, help="Deploy the victim returning top-1 labels only.")
@click.option(
    "--budget", type=click.IntRange(min=1), default=None, help="Override the query budget."
)
@simulation_seed_option
@click.option("--no-curve", is_flag=True, help="Skip the accuracy/fidelity-vs-budget curve.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.json, report.md and a PNG curve here.",
)
@data_option
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attack_run(
    name_or_toml, target, defenses, labels, budget, seed, no_curve, out, data, options, as_json
):
    """Run one attack against a model file (through the given defenses).

    NAME_OR_TOML is a name from `vtrust attack list` or the path of a TOML entry."""
    from vtrust.catalog import load_entry
    from vtrust.defenses.deployment import Deployment
    from vtrust.evaluation.attacks import run_entry

    entry = load_entry("attacks", name_or_toml)
    deployment = Deployment.of(defenses, labels=labels)
    victim, splits = target_splits(target, data, options)
    result = run_entry(
        entry,
        victim,
        splits,
        deployment=deployment,
        budget=budget,
        seed=seed,
        curve=not no_curve,
    )
    result["target"] = str(target)
    if out is not None:
        write_attack_report(result, out)
    if as_json:
        emit_json(result)
        return
    subject = {"removal": "attacked model (strongest setting)", "direct": "stolen copy"}
    click.echo(
        f"{entry.name}: {subject.get(result['category'], 'thief')} accuracy "
        f"{result['thief_accuracy']:.4f}, fidelity {result['fidelity']:.4f}, "
        f"{result['queries']} queries, {result['seconds']:.1f} s"
        + (f" (stopped: {result['stopped']})" if result.get("stopped") else "")
    )
    for name, flag in result.get("defenses", {}).items():
        state = f"flagged at query {flag['at_query']}" if flag["flagged"] else "not flagged"
        click.echo(f"  defense {name}: {state}")


def write_attack_report(result: dict, out: Path) -> None:
    """report.json, report.md and curve.png for one attack run."""
    from vtrust.report import Report, line_plot

    report = Report(f"Attack {result['attack']} against {result['target']}")
    seed = result["seed"] if result["seed"] is not None else "0 (defenses unseeded)"
    report.add_text(
        f"Kind `{result['kind']}` ({result['category']}), seed {seed}. Victim test "
        f"accuracy {result['victim_accuracy']:.4f}; thief accuracy "
        f"{result['thief_accuracy']:.4f}, fidelity {result['fidelity']:.4f}, "
        f"{result['queries']} queries, {result['seconds']:.1f} s."
    )
    curve = result.get("curve") or []
    if curve:
        x_key = next(k for k in ("queries", "strength", "fraction") if k in curve[0])
        headers = list(curve[0])
        report.add_table("Curve", headers, [[row[h] for h in headers] for row in curve])
        y_keys = [k for k in headers if k != x_key and k not in ("samples",)]
        xs = [row[x_key] for row in curve]
        series = {k: (xs, [row[k] for row in curve]) for k in y_keys}
        label = result.get("strength_name", x_key)
        report.add_figure(
            "curve.png",
            line_plot(
                series,
                title=f"{result['attack']}",
                xlabel=label,
                ylabel="value",
                logx=x_key in ("queries", "fraction"),
            ),
            f"{result['attack']}: metrics vs {label}",
        )
    report.write(out, result)
