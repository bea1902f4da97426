"""Study: what every built-in attack achieves against the default victims.

Extraction attacks run against the MLP victim (equation solving against the softmax
regression victim), each with its accuracy/fidelity-vs-budget curve; removal attacks
sweep their strengths on the MLP victim; direct stealing compares fine-tuning the stolen
weights with training from scratch.

    python experiments/attacks.py [--dataset digits|idx:DIR] [--seed S] [--attacks A,B]
                                  [--out DIR]

Writes ``results/attacks/results.json``, ``report.md`` and PNG plots.
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
    shares,
    subset,
    train_victims,
    victim_arch,
    with_thief_steps,
)

from vtrust import progress  # noqa: E402
from vtrust.catalog import list_entries  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.evaluation.attacks import ELSEWHERE, run_entry  # noqa: E402
from vtrust.models.files import model_sha256  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402

# attacks on a watermark key (the watermark study runs them) or on a proof's statement
NOT_ON_THE_MODEL = tuple(ELSEWHERE)  # run by other commands: not against the model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/attacks"))
    parser.add_argument("--curve", default="0.25,1",
                        help="Shares of each extraction's queries its budget curve retrains "
                        "a thief at (each costs a thief's training: with three seeds the "
                        "default two points keep the study within 10 minutes).")  # fmt: skip
    add_subset_option(parser, "attacks", what="attacks")
    add_thief_steps_option(parser)
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    every = [e.name for e in list_entries("attacks") if e.kind not in NOT_ON_THE_MODEL]
    chosen = set(subset(parser, "attacks", args.attacks, every))
    entries = [e for e in list_entries("attacks") if e.name in chosen]  # catalog order
    entries = with_thief_steps(parser, entries, args.thief_steps)
    curve = shares(parser, "--curve", args.curve)
    if run_over_seeds(__file__, args, study="attacks"):
        return

    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    victims = train_victims(splits, entries, args.seed)
    results = {}
    for entry in entries:
        victim = victim_arch(entry)
        progress.stage(f"[attacks] {entry.name} against the {victim} victim")
        results[entry.name] = {
            "victim": victim,
            **run_entry(entry, victims[victim], splits, seed=args.seed, curve_fractions=curve),
        }

    report = Report(f"Attacks on {args.dataset} (seed {args.seed})")
    extraction = {n: r for n, r in results.items() if r["category"] == "extraction"}
    report.add_table(
        "Extraction",
        ["attack", "victim", "queries", "thief accuracy", "fidelity", "seconds"],
        [
            [n, r["victim"], r["queries"], r["thief_accuracy"], r["fidelity"], r["seconds"]]
            for n, r in extraction.items()
        ],
    )
    report.add_figure(
        "extraction-fidelity.png",
        line_plot(
            {
                n: ([p["queries"] for p in r["curve"]], [p["fidelity"] for p in r["curve"]])
                for n, r in extraction.items()
            },
            title="Fidelity vs queries",
            xlabel="queries",
            ylabel="fidelity",
            logx=True,
        ),
        "fidelity of each extraction attack's thief against its query budget",
    )
    removal = {n: r for n, r in results.items() if r["category"] == "removal"}
    report.add_table(
        "Removal (test accuracy of the attacked copy at each strength)",
        ["attack", "strength", "curve (strength: accuracy)"],
        [
            [
                n,
                r["strength_name"],
                ", ".join(f"{p['strength']:g}: {p['accuracy']:.3f}" for p in r["curve"]),
            ]
            for n, r in removal.items()
        ],
    )
    for name, r in removal.items():
        report.add_figure(
            f"removal-{name}.png",
            line_plot(
                {
                    "accuracy": (
                        [p["strength"] for p in r["curve"]],
                        [p["accuracy"] for p in r["curve"]],
                    ),
                    "fidelity": (
                        [p["strength"] for p in r["curve"]],
                        [p["fidelity"] for p in r["curve"]],
                    ),
                },
                title=name,
                xlabel=r["strength_name"],
                ylabel="value",
            ),
            f"{name}: accuracy and fidelity vs {r['strength_name']}",
        )
    direct = results.get("direct-stealing")
    if direct:
        curve = direct["curve"]
        report.add_figure(
            "direct-stealing.png",
            line_plot(
                {
                    "fine-tuned stolen copy": (
                        [p["fraction"] for p in curve],
                        [p["finetuned_accuracy"] for p in curve],
                    ),
                    "from scratch": (
                        [p["fraction"] for p in curve],
                        [p["scratch_accuracy"] for p in curve],
                    ),
                },
                title="Direct stealing",
                xlabel="fraction of attacker split",
                ylabel="test accuracy",
                logx=True,
            ),
            "direct stealing: fine-tuning the stolen weights vs training from scratch",
        )
    report.add_text(f"Total time {time.perf_counter() - started:.0f} s.")
    report.write(
        args.out,
        {
            "dataset": args.dataset,
            "seed": args.seed,
            "attacks": results,
            # the victims' weight hashes: the most sensitive check that a rerun is the same
            "victims": {arch: model_sha256(model) for arch, model in victims.items()},
            "numerics": numerics_record(),
        },
        json_name="results.json",
    )
    progress.stage(f"[attacks] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
