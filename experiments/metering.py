"""Study: metering what cannot be stopped — the in-distribution, label-only thief's
fidelity as a function of the query budget it can buy from a metered device, and
whether a host that cheats its meter (rollback, replay, skip, edit) is caught.

    python experiments/metering.py [--dataset digits|idx:DIR] [--seed S] [--budgets 25,50,...]

Per seed: a CNN victim runs inside a metering enclave (``vtrust.enclave.metered_device``)
granted each budget in turn by the owner's ledger; a Knockoff thief with the attacker
split asks for top-1 labels until the meter stops it (budgets are capped at the split's
size: more queries of the same images buy nothing); the owner reconciles the device's
signed report. Writes ``results/metering/results.json``, ``report.md`` and a plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import add_thief_steps_option, with_thief_steps  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.catalog import load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.evaluation.metering import bought_fidelity, cheating_hosts  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402

THIEF = "knockoff-attacker-400"  # attacker-split images, top-1 labels only
FIDELITY_GOAL = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", default="25,50,100,200,400,1000,2500",
                        help="query budgets sold to the device (capped at the split)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results/metering"))
    add_thief_steps_option(parser)
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    try:
        budgets = sorted({int(b) for b in args.budgets.split(",")})
    except ValueError:
        parser.error(f"--budgets: comma-separated query counts, got {args.budgets!r}")
    if not budgets or budgets[0] < 1:
        parser.error("--budgets must be positive")
    (thief,) = with_thief_steps(parser, [load_entry("attacks", THIEF)], args.thief_steps)
    if run_over_seeds(__file__, args, study="metering"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    progress.stage("[metering] victim CNN")
    trained = train_model(splits, "cnn", seed=args.seed)
    capped = sorted({min(b, len(splits.attacker)) for b in budgets})
    progress.stage(f"[metering] {THIEF} against a device sold {capped} queries")
    curve = bought_fidelity(trained.model, splits, thief, capped, seed=args.seed)
    progress.stage("[metering] hosts that cheat their meter")
    cheats = cheating_hosts(trained.model, splits.test.x)
    reach = next((r["budget"] for r in curve if r["fidelity"] >= FIDELITY_GOAL), None)
    results = {"dataset": args.dataset, "seed": args.seed, "thief": THIEF,
               "victim_accuracy": trained.test_accuracy, "attacker_split": len(splits.attacker),
               "curve": curve, "budget_to_90_fidelity": reach, "cheats": cheats,
               "seconds": time.perf_counter() - started}  # fmt: skip
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Metering — {results['dataset']}, seed {results['seed']}")
    report.add_text(
        f"Victim CNN, test accuracy {results['victim_accuracy']:.4f}; thief `{results['thief']}` "
        f"(attacker split of {results['attacker_split']} images, top-1 labels). Budget for "
        f"90 % fidelity: {results['budget_to_90_fidelity'] or 'not within the budgets'}."
    )
    report.add_table(
        "Fidelity the thief buys (answered: queries the meter let through; reconciled: the "
        "count the owner accepted from the device's signed report)",
        ["budget", "answered", "reconciled", "stopped by the meter", "fidelity", "thief acc."],
        [[r["budget"], r["queries"], r["reconciled"], "yes" if r["stopped_by_meter"] else "no",
          f"{r['fidelity']:.3f}", f"{r['thief_accuracy']:.3f}"] for r in results["curve"]],
    )  # fmt: skip
    report.add_table(
        "Hosts that cheat their meter",
        ["cheat", "caught by", "answers it got before being caught"],
        [[c["cheat"], c["caught_by"] or "NOT CAUGHT", c["answers_before_caught"]]
         for c in results["cheats"]],
    )  # fmt: skip
    curve = results["curve"]
    report.add_figure(
        "fidelity.png",
        line_plot({"label-only thief": ([r["budget"] for r in curve],
                                        [r["fidelity"] for r in curve])},
                  title="Fidelity a thief buys from a metered device", xlabel="query budget",
                  ylabel="fidelity", logx=True),
        "Thief fidelity against the budget the device was sold (log scale).",
    )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[metering] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
