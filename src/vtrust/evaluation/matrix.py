"""The (defense, attack, seed) matrix against one victim model file.

A cell deploys the victim behind one defense ("none" for no defense), runs one extraction
attack at the matrix's query budget with one seed, and records the thief's accuracy and
fidelity, the queries spent and whether (and when) each defense flagged the attacker.
Cells run on one torch thread each, so a cell's result does not depend on which
executor or how many workers ran it; ``seconds`` is the only non-deterministic field.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust._io import output_folder
from vtrust.errors import InputError
from vtrust.evaluation.executors import execute
from vtrust.evaluation.store import CellStore

NO_DEFENSE = "none"


@dataclass(frozen=True)
class MatrixSpec:
    """The matrix: a model file of any format (with ``data``, a dataset spec, for formats
    that record none or to override a vtrust file's), defenses × attacks × seeds."""

    target: str  # model file
    defenses: tuple[str, ...]
    attacks: tuple[str, ...]
    seeds: int = 1
    budget: int = 500
    data: str | None = None

    def __post_init__(self) -> None:
        if not self.defenses or not self.attacks or self.seeds < 1 or self.budget < 1:
            raise InputError("a matrix needs ≥ 1 defense, attack and seed, and a budget ≥ 1")

    def cells(self) -> list[Cell]:
        """Every cell; keys carry the victim's weights hash and the budget, so a store
        never hands back a result computed for another model or budget."""
        context = f"{_identity(self.target)[:16]}@{self.budget}"
        if self.data is not None:
            from vtrust.data.datasets import canonical_spec

            context += f"@{canonical_spec(self.data)}"
        return [
            Cell(d, a, s, context)
            for d in self.defenses
            for a in self.attacks
            for s in range(self.seeds)
        ]


@dataclass(frozen=True)
class Cell:
    defense: str
    attack: str
    seed: int
    context: str = ""  # victim hash and budget

    @property
    def key(self) -> str:
        return f"{self.context}|{self.defense}|{self.attack}|{self.seed}"


def _identity(target: str) -> str:
    """A vtrust file's weights hash (as in earlier stores), else the file's SHA-256."""
    import hashlib

    from vtrust.models import load_model
    from vtrust.targets.options import read_model_bytes
    from vtrust.targets.sniff import sniff

    raw = read_model_bytes(target)
    if sniff(raw) == "vtrust":
        return load_model(target).sha256
    return hashlib.sha256(raw).hexdigest()


@functools.cache
def _victim(target: str, data: str | None):
    from vtrust.targets import load_target_and_splits

    return load_target_and_splits(Path(target), data)


def run_cell(job: tuple[MatrixSpec, Cell]) -> dict[str, Any]:
    """One cell, as a JSON-ready record (picklable: runs in pool workers and Ray tasks)."""
    import torch

    from vtrust.catalog import load_entry
    from vtrust.defenses.deployment import Deployment
    from vtrust.evaluation.attacks import run_entry

    spec, cell = job
    progress.set_enabled(False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, splits = _victim(spec.target, spec.data)
        names = [] if cell.defense == NO_DEFENSE else [cell.defense]
        deployment = Deployment.of(names)
        started = time.perf_counter()
        summary = run_entry(load_entry("attacks", cell.attack), model, splits,
                            deployment=deployment, budget=spec.budget, seed=cell.seed,
                            curve=False)  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(before)
    flags = summary.get("defenses", {}).get(cell.defense, {})
    return {
        "key": cell.key,
        **asdict(cell),
        "result": {
            "thief_accuracy": summary["thief_accuracy"],
            "fidelity": summary["fidelity"],
            "queries": summary["queries"],
            "stopped": summary.get("stopped"),
            "flagged": bool(flags.get("flagged", False)),
            "flagged_at": flags.get("at_query"),
        },
        "seconds": seconds,
    }


def run_matrix(
    spec: MatrixSpec,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> dict[str, Any]:
    """Run every cell not yet in ``out/cells.jsonl``; the finished matrix's records."""
    from vtrust.catalog import load_entry

    for name in spec.attacks:
        load_entry("attacks", name)  # fail fast on unknown names
    for name in spec.defenses:
        if name != NO_DEFENSE:
            load_entry("defenses", name)
    store = CellStore(output_folder(out) / "cells.jsonl")
    done = store.records()
    cells = spec.cells()
    todo = [c for c in cells if c.key not in done]
    progress.stage(
        f"[evaluate] {len(cells)} cells: {len(cells) - len(todo)} already done, {len(todo)} to run"
    )
    bar = progress.bar(None, desc="cells", total=len(todo))
    for record in execute(run_cell, [(spec, c) for c in todo], executor=executor,
                          workers=workers, address=address):  # fmt: skip
        store.append(record)
        bar.update(1)
        r = record["result"]
        progress.stage(f"[evaluate] {record['defense']} × {record['attack']} (seed "
                       f"{record['seed']}): fidelity {r['fidelity']:.3f}, "
                       f"{r['queries']} queries, flagged {r['flagged']}")  # fmt: skip
    bar.close()
    records = store.records()
    return {
        "spec": asdict(spec),
        "skipped": len(cells) - len(todo),
        "cells": [records[c.key] for c in cells],
    }
