"""Study: does the extraction warning's stealing progress track what thieves steal?

    python experiments/stealing.py [--dataset digits|idx:DIR] [--seed S] [--attacks A,B]

For every extraction attack of the catalog that queries through one client id (equation
solving against the softmax victim, every other against the MLP victim): its budget
curve (a thief retrained on each prefix of its transfer set) beside the extraction
warning's stealing progress after the same prefix (`vtrust.defenses.coverage`, the
defender's tree of the model's decision regions). Then 100 benign clients (test images,
100 each, then the whole test split each) through the warning: how many it flags, and
the spread of their progress. Thieves train for ``--thief-steps`` (default 600: 14 attacks × 4 curve
points × 3 seeds within 10 minutes on 2 cores).

Writes ``results/stealing/results.json``, ``report.md`` and a plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

import numpy as np  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import (  # noqa: E402
    add_subset_option,
    subset,
    train_victims,
    victim_arch,
    with_thief_steps,
)

from vtrust import progress  # noqa: E402
from vtrust.attacks.extraction.common import ExtractionAttack  # noqa: E402
from vtrust.catalog import list_entries  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.defenses.deployment import Deployment  # noqa: E402
from vtrust.evaluation import defenses as ev  # noqa: E402
from vtrust.evaluation.attacks import budget_curve, run_extraction  # noqa: E402
from vtrust.models.training import predict_proba  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402

WARNING = "extraction-warning"
CURVE = (0.1, 0.25, 0.5, 1.0)
THIEF_STEPS = 600
BENIGN_QUERIES = (100, None)  # per benign client: 100 test images, and the whole test split


def extraction_entries() -> list:
    """The catalog's extraction attacks that keep one client id (progress is per id)."""
    out = []
    for entry in list_entries("attacks"):
        attack = entry.build()
        if isinstance(attack, ExtractionAttack) and not getattr(
                entry.params, "rotate_every", 0) and getattr(
                entry.params, "on_refusal", "stop") == "stop":  # fmt: skip
            out.append(entry)
    return out


def tracking(entry, victim, splits, warning, seed: int) -> dict:
    """One attack's budget curve with the stealing progress after each prefix."""
    _, result = run_extraction(entry.build(), victim, splits, seed=seed, curve=False)
    curve = budget_curve(entry.build(), result, victim, splits.test, seed=seed, fractions=CURVE)
    x = result.transfer_x
    after = warning.progress_of(x, predict_proba(victim, x)) if len(x) else np.zeros(0)
    for point in curve:
        point["progress"] = float(after[point["queries"] - 1])
    return {"queries": result.queries, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/stealing"))
    parser.add_argument("--thief-steps", type=int, default=THIEF_STEPS)
    parser.add_argument("--clients", type=int, default=100, help="benign clients")
    add_subset_option(parser, "attacks", what="extraction attacks")
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    every = [e.name for e in extraction_entries()]
    chosen = set(subset(parser, "attacks", args.attacks, every))
    entries = with_thief_steps(parser, [e for e in extraction_entries() if e.name in chosen],
                               args.thief_steps)  # fmt: skip
    if run_over_seeds(__file__, args, study="stealing"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    victims = train_victims(splits, entries, args.seed)
    attacks = {}
    for entry in entries:
        arch = victim_arch(entry)
        progress.stage(f"[stealing] {entry.name} against the {arch} victim")
        oracle = Deployment.of([WARNING]).oracle(victims[arch], splits.victim, seed=args.seed)
        (warning,) = oracle.defenses
        attacks[entry.name] = {"victim": arch, **tracking(entry, victims[arch], splits, warning,
                                                          args.seed)}  # fmt: skip
    benign = []
    for per_client in BENIGN_QUERIES:
        progress.stage(f"[stealing] {args.clients} benign clients, {per_client or 'all'} queries")
        benign.append(benign_progress(victims["mlp"], splits, args.clients, per_client,
                                      args.seed))  # fmt: skip
    points = [(p["progress"], p["fidelity"]) for a in attacks.values() for p in a["curve"]]
    est, fid = np.array(points).T if points else (np.zeros(0), np.zeros(0))
    results = {
        "dataset": args.dataset, "seed": args.seed, "attacks": attacks, "benign": benign,
        "threshold": Deployment.of([WARNING]).defenses[0].params.threshold,
        "correlation": float(np.corrcoef(est, fid)[0, 1]) if len(est) > 2 else None,
        "mean_abs_error": float(np.abs(est - fid).mean()) if len(est) else None,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    write_report(results, args)


def benign_progress(victim, splits, clients: int, per_client: int | None, seed: int) -> dict:
    """Benign traffic through the warning: clients flagged, and their final progress."""
    deployment = Deployment.of([WARNING])
    served = ev.served_to_benign(victim, splits, deployment, clients=clients,
                                 per_client=per_client, seed=seed)  # fmt: skip
    oracle = deployment.oracle(victim, splits.victim, seed=seed)
    (warning,) = oracle.defenses
    finals = []
    for _, order in ev.benign_orders(splits.test, clients=clients, per_client=per_client,
                                     seed=seed):  # fmt: skip
        x = splits.test.x[order]
        finals.append(float(warning.progress_of(x, predict_proba(victim, x))[-1]))
    return {"clients": served["clients"], "queries_per_client": served["queries_per_client"],
            "flagged": served["flagged"], "progress_median": float(np.median(finals)),
            "progress_max": float(max(finals))}  # fmt: skip


def write_report(results: dict, args) -> None:
    report = Report(f"Extraction warning — {results['dataset']}, seed {results['seed']}")
    benign = "; ".join(
        f"{b['flagged']} of {b['clients']} clients with {b['queries_per_client']} queries "
        f"each (progress median {b['progress_median']:.3f}, max {b['progress_max']:.3f})"
        for b in results["benign"])  # fmt: skip
    report.add_text(
        f"Stealing progress (share of the model's decision regions taught) against each "
        f"thief's fidelity, after the same queries. Correlation over every point "
        f"{results['correlation']:.3f}, mean |progress − fidelity| "
        f"{results['mean_abs_error']:.3f}. Benign clients flagged at progress "
        f"{results['threshold']}: {benign}."
    )
    rows = [[name, a["victim"], p["queries"], f"{p['progress']:.3f}", f"{p['fidelity']:.3f}"]
            for name, a in results["attacks"].items() for p in a["curve"]]  # fmt: skip
    report.add_table("Per attack and prefix", ["attack", "victim", "queries", "progress",
                                               "fidelity"], rows)  # fmt: skip
    series = {name: ([p["progress"] for p in a["curve"]], [p["fidelity"] for p in a["curve"]])
              for name, a in results["attacks"].items()}  # fmt: skip
    series["progress = fidelity"] = ([0.0, 1.0], [0.0, 1.0])
    report.add_figure(
        "tracking.png",
        line_plot(series, title="Stealing progress vs thief fidelity",
                  xlabel="stealing progress (extraction warning)", ylabel="thief fidelity"),
        "Each attack's thief fidelity against the warning's progress after 10, 25, 50 and "
        "100 % of its queries; on the diagonal the estimate is exact.",
    )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[stealing] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
