"""Study: the full evaluation matrix — every built-in query-side defense against every
black-box extraction attack on the digits MLP, through ``vtrust evaluate``'s machinery
(resumable store, process pool).

    python experiments/matrix.py [--dataset digits|idx:DIR] [--seed S] [--seeds N]
                                 [--attack-seeds N] [--budget B] [--workers W]
                                 [--executor local|ray]

Writes ``results/matrix/results.json`` (cells and per-pair means), ``report.md``,
``cells.jsonl`` and heatmaps. Rerunning resumes: finished cells are not redone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import add_subset_option, subset  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.evaluation.matrix import MatrixSpec, run_matrix  # noqa: E402
from vtrust.evaluation.report import summarise, write_report  # noqa: E402
from vtrust.models import save_model  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402

# 7 × 4 cells × 3 seeds fit the 10-minute budget on 2 cores (a refused thief trains on
# a handful of answers); rounding is swept in the defenses study, JB-top3 and CopycatCNN
# are measured in the attacks study
DEFENSES = ("none", "default", "prada", "shift", "top-1", "reverse-sigmoid", "mad-argmax")
ATTACKS = ("random-uniform-2k", "jbda", "knockoff-attacker-400", "line-search-2k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0, help="victim training seed")
    parser.add_argument("--attack-seeds", type=int, default=1, help="attack seeds per cell")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="local", choices=["local", "ray"])
    parser.add_argument("--out", type=Path, default=Path("results/matrix"))
    add_subset_option(parser, "defenses", what="defenses")
    add_subset_option(parser, "attacks", what="attacks")
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    defenses = subset(parser, "defenses", args.defenses, DEFENSES)
    attacks = subset(parser, "attacks", args.attacks, ATTACKS)
    if run_over_seeds(__file__, args, study="matrix"):
        return
    started = time.perf_counter()
    progress.stage("[matrix] training the MLP victim")
    trained = train_model(args.dataset, "mlp", seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    victim = args.out / "victim.safetensors"
    save_model(victim, trained.model, trained.metadata)
    spec = MatrixSpec(
        str(victim), tuple(defenses), tuple(attacks), seeds=args.attack_seeds, budget=args.budget
    )
    result = run_matrix(spec, args.out, executor=args.executor, workers=args.workers)
    result["spec"]["target"] = "victim.safetensors"  # relative: results do not name paths
    result["dataset"], result["seed"] = args.dataset, args.seed
    result["victim_accuracy"] = trained.test_accuracy
    result["numerics"] = numerics_record()
    result["summary"] = summarise(result)
    result["seconds"] = time.perf_counter() - started
    write_report(result, args.out)
    (args.out / "matrix.json").rename(args.out / "results.json")
    progress.stage(f"[matrix] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
