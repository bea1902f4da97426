"""``vtrust audit``: one model as it would be deployed — extraction, detection,
watermark and proofs in one report."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import data_option, emit_json, simulation_seed_option

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("model_file", type=_FILE)
@click.option("--defense", "defenses", multiple=True, help="Deployed defense (repeatable).")
@click.option("--key", "key_file", type=_FILE, default=None, help="Watermark key to verify.")
@click.option("--budget", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Queries per extraction attack.")  # fmt: skip
@click.option("--attack", "attacks", multiple=True,
              help="Extraction attacks (default: the audit set).")  # fmt: skip
@simulation_seed_option
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def audit(model_file, defenses, key_file, budget, attacks, seed, data, as_json) -> None:
    """Queries to 90 % fidelity per attack, whether PRADA or the shift detector would have
    caught it, watermark status (with --key), and whether a proof verifies."""
    from vtrust.audit.report import AUDIT_ATTACKS, audit_model

    result = audit_model(
        model_file, defenses=tuple(defenses), key_file=key_file, budget=budget,
        attacks=tuple(attacks) or AUDIT_ATTACKS, seed=seed, data=data,
    )  # fmt: skip
    if as_json:
        emit_json(result)
        return
    click.echo(f"audit of {model_file} ({result['architecture']}), deployed with "
               f"{', '.join(defenses) or 'no defenses'}; {budget} queries per attack")  # fmt: skip
    click.echo(f"  {'attack':<24} {'fidelity':>8} {'to 90 %':>8}  caught by")
    for row in result["extraction"]:
        reach = row["queries_to_90_fidelity"]
        caught = [f"{n} @ {f['at_query']}" for n, f in row["caught_by"].items() if f["flagged"]]
        reach_text = "never" if reach is None else str(reach)
        click.echo(f"  {row['attack']:<24} {row['fidelity']:>8.3f} {reach_text:>8}  "
                   f"{', '.join(caught) or '—'}")  # fmt: skip
    mark = result["watermark"]
    if mark is not None:
        click.echo(f"  watermark: {'owned' if mark['owned'] else 'NOT verified'} "
                   f"(p = {mark['p_value']:.3g})")  # fmt: skip
    proof = result["proof"]
    if not proof["applicable"]:
        click.echo(f"  proof: not applicable — {proof['reason']}")
    else:
        click.echo(
            "  proof: " + ("verifies" if proof["verified"] else f"FAILS ({proof['reason']})")
        )
        for row in proof.get("substitutions", []):
            verdict = "ACCEPTED — the verifier is fooled" if row["accepted"] else "rejected"
            click.echo(f"    {row['attack']:<22} {verdict}: {row['reason']}")
