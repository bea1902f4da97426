"""Study: adaptive thieves against vtrust's own detectors — each beside the attack it
adapts, against each defense, with its fidelity at budget and whether and when it was
caught.

    python experiments/adaptive.py [--dataset digits|idx:DIR] [--seed S] [--attacks A,B]

Pairs (non-adaptive → adaptive): natural-image Knockoff → sybil rotation (a new id
every 4 queries), a fresh id after every refusal, density-aware selection (the
attacker's own PPCA on 50 in-distribution images), and refusal-aware rejection sampling
(OARS-style); JBDA → JBDA that keeps PRADA's distance stream benign-looking (half
natural queries, steps sized to benign distances); line search → line search between
the attacker's own images with no bisection step below a benign gap. Victim: the digits MLP of the
defenses study; answers are probabilities (each entry's own labels setting).

Also measures which out-of-distribution score separates the test split from the natural
pool better (AUROC): Adaptive Misinformation's PPCA density or the model's confidence.

Writes ``results/adaptive/results.json``, ``report.md`` and a plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import (  # noqa: E402
    add_subset_option,
    add_thief_steps_option,
    subset,
    with_thief_steps,
)

from vtrust import progress  # noqa: E402
from vtrust.catalog import load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.evaluation import defenses as ev  # noqa: E402
from vtrust.models import accuracy  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.oracle import OutputMode  # noqa: E402
from vtrust.report import Report, bar_plot  # noqa: E402

PAIRS = {  # adaptive attack → the attack it adapts
    "knockoff-sybil": "knockoff-natural-2k",
    "knockoff-new-id": "knockoff-natural-2k",
    "knockoff-density": "knockoff-natural-2k",
    "knockoff-refusal-aware": "knockoff-natural-2k",
    "jbda-evasive": "jbda",
    "line-search-evasive": "line-search-2k",
}
DEFENSES = ("prada-refuse", "shift-refuse", "misinformation", "default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/adaptive"))
    add_subset_option(parser, "attacks", what="adaptive attacks (each with its baseline)")
    add_subset_option(parser, "defenses", what="defenses")
    add_thief_steps_option(parser)
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    adaptive = subset(parser, "attacks", args.attacks, list(PAIRS))
    names = list(dict.fromkeys([PAIRS[a] for a in adaptive] + adaptive))
    attacks = with_thief_steps(parser, [load_entry("attacks", n) for n in names], args.thief_steps)
    defenses = [load_entry("defenses", n) for n in subset(parser, "defenses", args.defenses,
                                                          DEFENSES)]  # fmt: skip
    if run_over_seeds(__file__, args, study="adaptive"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    progress.stage("[adaptive] victim MLP")
    victim = train_model(splits, "mlp", seed=args.seed).model
    separation = ev.ood_separation(victim, splits, seed=args.seed)
    rows = ev.thieves_behind(victim, splits, defenses, attacks, seed=args.seed,
                             outputs=(OutputMode.PROBS,))  # fmt: skip
    results = {"dataset": args.dataset, "seed": args.seed, "pairs": {a: PAIRS[a] for a in adaptive},
               "victim_accuracy": accuracy(victim, splits.test), "rows": rows,
               "ood_separation": separation,
               "fidelity": fidelity_table(rows),
               "seconds": time.perf_counter() - started}  # fmt: skip
    write_report(results, args)


def fidelity_table(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Thief fidelity by attack, then defense (for the papers' rows of the README)."""
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        table.setdefault(r["attack"], {})[r["defense"]] = r["fidelity"]
    return table


def write_report(results: dict, args) -> None:
    report = Report(f"Adaptive thieves — {results['dataset']}, seed {results['seed']}")
    report.add_text(
        f"Victim MLP, test accuracy {results['victim_accuracy']:.4f}. Each cell: thief "
        "fidelity, queries answered, and the ids used / flagged / refused (first flag at "
        "the attacker's query shown after @)."
    )
    sep = results["ood_separation"]
    report.add_text(
        f"Out-of-distribution scores against the natural pool ({sep['samples']} images, half "
        f"test split): AUROC {sep['density']:.4f} for Adaptive Misinformation's PPCA density "
        f"(its default score), {sep['confidence']:.4f} for the model's top-1 probability."
    )
    cell = {(r["attack"], r["defense"]): r for r in results["rows"]}
    defenses = list(dict.fromkeys(r["defense"] for r in results["rows"]))

    def text(r: dict) -> str:
        caught = f" @{r['flagged_at']}" if r["flagged_at"] is not None else ""
        return (f"{r['fidelity']:.3f} ({r['queries']} q; ids {r['client_ids']}/"
                f"{r['ids_flagged']}/{r['ids_refused']}{caught})")  # fmt: skip

    attacks = list(dict.fromkeys(r["attack"] for r in results["rows"]))
    report.add_table("Fidelity and detection per attack and defense", ["attack", *defenses],
                     [[a, *(text(cell[a, d]) for d in defenses)] for a in attacks])  # fmt: skip
    gains = {}
    for adaptive, base in results["pairs"].items():
        for d in defenses:
            gains[f"{adaptive} / {d}"] = cell[adaptive, d]["fidelity"] - cell[base, d]["fidelity"]
    report.add_figure(
        "gain.png",
        bar_plot(gains, title="Fidelity the adaptive attack gains over its baseline",
                 ylabel="fidelity (adaptive − baseline)"),
        "Per adaptive attack and defense: its fidelity minus the non-adaptive attack's.",
    )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[adaptive] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
