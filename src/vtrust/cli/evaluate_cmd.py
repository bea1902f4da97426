"""``vtrust evaluate``: the (defense, attack, seed) matrix, resumable."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import ATTACK_HELP, DEFENSE_HELP, data_option, emit_json


@click.command()
@click.option("--target", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The victim model file (any format; --data for non-vtrust files).")  # fmt: skip
@click.option("--defense", "defenses", multiple=True, required=True,
              help=DEFENSE_HELP[:-1] + "; 'none': undefended.")  # fmt: skip
@click.option("--attack", "attacks", multiple=True, required=True,
              help=ATTACK_HELP)  # fmt: skip
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Attacker seeds per (defense, attack) cell.")  # fmt: skip
@click.option("--budget", type=click.IntRange(min=1), default=500, show_default=True,
              help="Queries per cell.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder (created) for cells.jsonl, report.md, report.json and plots; an "
              "interrupted run resumes from it.")  # fmt: skip
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Cells in a local process pool, or Ray tasks.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes, or CPUs for a local Ray instance.")  # fmt: skip
@click.option("--ray-address", default=None, help="A Ray cluster (default: RAY_ADDRESS).")
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(target, defenses, attacks, seeds, budget, out, executor, workers, ray_address,
             data, as_json) -> None:  # fmt: skip
    """Run every (defense, attack, seed) cell; finished cells are kept and not redone."""
    from vtrust.evaluation.matrix import MatrixSpec, run_matrix
    from vtrust.evaluation.report import summarise, write_report

    spec = MatrixSpec(str(target), tuple(defenses), tuple(attacks), seeds, budget, data)
    result = run_matrix(spec, out, executor=executor, workers=workers, address=ray_address)
    report = write_report(result, out)
    if as_json:
        emit_json({"out": str(out), "skipped": result["skipped"], "cells": len(result["cells"]),
                   "summary": summarise(result)})  # fmt: skip
        return
    click.echo(f"{len(result['cells'])} cells ({result['skipped']} resumed); report: {report}")
