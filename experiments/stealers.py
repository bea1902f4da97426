"""Study: the other stealing attacks the TinyMLOps paper cites — CloudLeak and a
data-free thief — beside Knockoff, with budget curves, undefended and behind each
defense.

    python experiments/stealers.py [--dataset digits|idx:DIR] [--seed S]
                                   [--attacks A,B] [--defenses D,E] [--thief-steps N]

CloudLeak (`cloudleak-2k`: attacker-split images pushed across the substitute's
boundary, label-only), the data-free thief (`data-free-2k`: generator-synthesised
queries, no attacker data) and natural-image Knockoff (`knockoff-natural-2k`), each at
its 2,000-query budget against the MLP victim, with a thief retrained at 10, 25, 50 and
100 % of what it was answered (the budget curve). Thieves train for ``--thief-steps``
(default 400, so that three seeds on digits stay near 10 minutes on 2 cores).

Writes ``results/stealers/results.json``, ``report.md`` and one plot per attack.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import add_subset_option, subset, with_thief_steps  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.catalog import load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.defenses.deployment import Deployment  # noqa: E402
from vtrust.evaluation.attacks import run_entry  # noqa: E402
from vtrust.models import accuracy  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402

ATTACKS = ("knockoff-natural-2k", "cloudleak-2k", "data-free-2k")
DEFENSES = ("none", "default", "misinformation", "reverse-sigmoid", "mad-argmax")
CURVE = (0.1, 0.25, 0.5, 1.0)
THIEF_STEPS = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/stealers"))
    parser.add_argument("--thief-steps", type=int, default=THIEF_STEPS)
    add_subset_option(parser, "attacks", what="attacks")
    add_subset_option(parser, "defenses", what="defenses")
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    attacks = with_thief_steps(parser, [load_entry("attacks", n) for n in
                                        subset(parser, "attacks", args.attacks, ATTACKS)],
                               args.thief_steps)  # fmt: skip
    defenses = subset(parser, "defenses", args.defenses, DEFENSES)
    if run_over_seeds(__file__, args, study="stealers"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    victim = train_model(splits, "mlp", seed=args.seed).model
    cells: dict[str, dict[str, dict]] = {}
    for attack in attacks:
        for name in defenses:
            progress.stage(f"[stealers] {attack.name} behind {name}")
            deployment = Deployment.of([] if name == "none" else [name])
            r = run_entry(attack, victim, splits, deployment=deployment, seed=args.seed,
                          curve_fractions=CURVE)  # fmt: skip
            cells.setdefault(attack.name, {})[name] = {
                "fidelity": r["fidelity"], "queries": r["queries"], "stopped": r["stopped"],
                "flagged": any(f["flagged"] for f in r["defenses"].values()),
                "curve": [{"queries": p["queries"], "fidelity": p["fidelity"]}
                          for p in r["curve"]],
            }  # fmt: skip
    results = {"dataset": args.dataset, "seed": args.seed, "cells": cells,
               "victim_accuracy": accuracy(victim, splits.test),
               "seconds": time.perf_counter() - started}  # fmt: skip
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"CloudLeak, data-free and Knockoff — {results['dataset']}, "
                    f"seed {results['seed']}")  # fmt: skip
    cells = results["cells"]
    defenses = list(next(iter(cells.values())))
    report.add_text(f"MLP victim, test accuracy {results['victim_accuracy']:.4f}. "
                    "Thief fidelity at the end of each attack (queries answered).")  # fmt: skip
    rows = [[a, *(f"{c[d]['fidelity']:.3f} ({c[d]['queries']} q)" for d in defenses)]
            for a, c in cells.items()]  # fmt: skip
    report.add_table("Fidelity per attack and defense", ["attack", *defenses], rows)
    for attack, by_defense in cells.items():
        series = {d: ([p["queries"] for p in c["curve"]], [p["fidelity"] for p in c["curve"]])
                  for d, c in by_defense.items() if c["curve"]}  # fmt: skip
        report.add_figure(
            f"{attack}.png",
            line_plot(series, title=f"{attack}: fidelity vs queries", xlabel="queries answered",
                      ylabel="thief fidelity"),
            f"{attack}: thief fidelity after 10, 25, 50 and 100 % of the queries it was "
            "answered, per defense.",
        )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[stealers] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
