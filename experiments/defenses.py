"""Study: query-side defenses — which extraction attacks PRADA and the distribution-shift
detector catch and how fast, their false positives on benign clients, an attacker split
over many client ids, and prediction poisoning (defender utility against thief accuracy,
as in the MAD paper).

    python experiments/defenses.py [--dataset digits|idx:DIR] [--seed S] [--clients N]
        [--attack-seeds N] [--sweeps mad-argmax,reverse-sigmoid,...]
        [--victim mlp|cnn] [--parts benign,detection,split,presets,poisoning]

Writes ``results/defenses/results.json``, ``report.md`` and PNG plots. On digits each
benign client sends the whole test split; on larger data ``--per-client`` (default
1,000) of it.
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
from vtrust.attacks.extraction.common import ExtractionAttack  # noqa: E402
from vtrust.catalog import list_entries, load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.defenses.deployment import Deployment  # noqa: E402
from vtrust.evaluation import defenses as ev  # noqa: E402
from vtrust.models import accuracy  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402

PARTS = ("benign", "detection", "split", "presets", "poisoning")
DETECTORS = ("prada", "shift")
SPLIT_DETECTORS = ("prada", "shift", "shift-global")
POISON_ATTACK = "knockoff-attacker-probs"
# acting deployments against the natural-image thief the issue measured with ART
PRESETS = ("default", "shift-refuse")
PRESET_ATTACK = "knockoff-natural-2k"
PRESET_BUDGET = 2500
# each point trains two thieves: 8 points and the undefended one × 3 seeds keep the
# study within 10 minutes on 2 cores
SWEEPS = (
    ("mad-argmax", "epsilon", (0.5, 1.0)),
    ("mad", "epsilon", (0.25,)),
    ("reverse-sigmoid", "beta", (0.6, 1.0)),
    ("round-2", "decimals", (0,)),
    ("noise-0.5", "epsilon", (1.0,)),
    ("top-3", "k", (1,)),
)


def fmt(value, digits=4):
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=100, help="benign clients")
    parser.add_argument("--per-client", type=int, default=1000, help="(not on digits)")
    parser.add_argument("--attack-seeds", type=int, default=1,
                        help="attacking clients per attack and seed")  # fmt: skip
    parser.add_argument(
        "--sweeps",
        default=",".join(name for name, _, _ in SWEEPS),
        help="comma-separated poisoning defenses to sweep",
    )
    parser.add_argument("--out", type=Path, default=Path("results/defenses"))
    parser.add_argument("--victim", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--parts", default=None,
                        help=f"Comma-separated parts of the study ({', '.join(PARTS)}; "
                        "default: all). The committed MNIST run has only presets.")  # fmt: skip
    add_subset_option(parser, "attacks", what="extraction attacks against the detectors")
    add_thief_steps_option(parser)
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    extraction = [e for e in list_entries("attacks") if isinstance(e.build(), ExtractionAttack)]
    chosen = set(subset(parser, "attacks", args.attacks, [e.name for e in extraction]))
    attacks = with_thief_steps(parser, [e for e in extraction if e.name in chosen],
                               args.thief_steps)  # fmt: skip
    poison_attack, preset_attack = with_thief_steps(
        parser, [load_entry("attacks", POISON_ATTACK), load_entry("attacks", PRESET_ATTACK)],
        args.thief_steps)  # fmt: skip
    parts = subset(parser, "parts", args.parts, PARTS)
    if run_over_seeds(__file__, args, study="defenses"):
        return
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_dataset(args.dataset, seed=args.seed)
    per_client = None if args.dataset == "digits" else args.per_client
    victim = train_model(splits, args.victim, seed=args.seed).model
    detectors = [load_entry("defenses", n) for n in DETECTORS]
    results = {
        "dataset": args.dataset,
        "seed": args.seed,
        "victim": args.victim,
        "victim_accuracy": accuracy(victim, splits.test),
        "detectors": {e.name: e.to_json() for e in detectors},
    }
    if "benign" in parts:
        progress.stage("[defenses] benign clients")
        results["false_positives"] = ev.false_positives(
            victim, splits, detectors, clients=args.clients, per_client=per_client,
            seed=args.seed)  # fmt: skip
    if "detection" in parts:
        progress.stage("[defenses] attacks against the detectors")
        seeds = [args.seed + i for i in range(args.attack_seeds)]
        results["detection"] = ev.detection(victim, splits, detectors, attacks, seeds=seeds)
    if "split" in parts:
        progress.stage("[defenses] attacker split over many client ids")
        split_entries = [load_entry("defenses", n) for n in SPLIT_DETECTORS]
        results["split_attacker"] = ev.split_attacker(victim, splits, split_entries,
                                                      seed=args.seed)  # fmt: skip
    if "presets" in parts:
        progress.stage("[defenses] acting deployments: benign clients and the natural-image thief")
        presets = [load_entry("defenses", n) for n in PRESETS]
        results["presets"] = {
            "benign": {e.name: ev.served_to_benign(victim, splits, Deployment((e,)),
                                                   clients=args.clients, per_client=per_client,
                                                   seed=args.seed) for e in presets},
            "thieves": ev.thieves_behind(victim, splits, presets, [preset_attack],
                                         budget=PRESET_BUDGET, seed=args.seed),
        }  # fmt: skip
    if "poisoning" in parts:
        progress.stage("[defenses] prediction poisoning sweep")
        chosen = set(args.sweeps.split(","))
        sweeps = [(load_entry("defenses", n), f, v) for n, f, v in SWEEPS if n in chosen]
        results["poisoning"] = ev.poisoning(victim, splits, sweeps, poison_attack,
                                            seed=args.seed)  # fmt: skip
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Query-side defenses on {args.dataset} (seed {args.seed})")
    report.add_text(f"Victim: {results['victim'].upper()}, test accuracy "
                    f"{results['victim_accuracy']:.4f}.")  # fmt: skip
    for part, write in (("false_positives", _benign_part), ("detection", _detection_part),
                        ("split_attacker", _split_part), ("presets", _presets_part),
                        ("poisoning", _poisoning_part)):  # fmt: skip
        if part in results:
            write(report, results)
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[defenses] wrote {args.out / 'report.md'}")


def _benign_part(report: Report, results: dict) -> None:
    fp = results["false_positives"]
    report.add_text(
        "Benign traffic: "
        + ", ".join(
            f"{name}: {r['flagged']} of {r['clients']} clients flagged "
            f"({r['queries_per_client']} queries each"
            + (f", lowest W {r['lowest_w']:.4f}" if r["lowest_w"] else "")
            + ")"
            for name, r in fp.items()
        )
        + "."
    )


def _detection_part(report: Report, results: dict) -> None:
    rows = results["detection"]
    report.add_table(
        "Detection per extraction attack (attacking clients flagged, median queries to flag)",
        ["attack", "detector", "flagged", "median queries", "queries sent", "thief acc."],
        [
            [
                r["attack"],
                r["detector"],
                f"{r['detected']}/{r['clients']}",
                fmt(r["median_queries"], 0),
                max(r["queries_sent"]),
                fmt(r["thief_accuracy"]),
            ]
            for r in rows
        ],
    )


def _split_part(report: Report, results: dict) -> None:
    split = results["split_attacker"]
    report.add_table(
        "Natural-image Knockoff split over client ids (4 queries each), among benign traffic",
        [
            "detector",
            "attacker ids flagged",
            "attacker queries before first flag",
            "benign flagged",
        ],
        [
            [
                name,
                f"{r['attacker_ids_flagged']}/{r['attacker_ids']}",
                fmt(r["attacker_queries_before_first_flag"]),
                f"{r['benign_flagged']}/{r['benign_clients']}",
            ]
            for name, r in split.items()
        ],
    )


def _presets_part(report: Report, results: dict) -> None:
    presets = results["presets"]
    report.add_table(
        f"Acting deployments: {PRESET_ATTACK} at {PRESET_BUDGET} queries (fidelity; queries "
        f"answered) and {next(iter(presets['benign'].values()))['clients']} benign clients "
        "(refused; top-1 "
        "accuracy served against undefended)",
        ["deployment", "thief fidelity (probs)", "thief fidelity (labels)", "benign refused",
         "benign accuracy served", "undefended"],
        [[name, *(next(f"{r['fidelity']:.3f} ({r['queries']})" for r in presets["thieves"]
                       if r["defense"] == name and r["output"] == mode)
                  for mode in ("probs", "labels")),
          *((f"{b['refused']}/{b['clients']}", fmt(b["accuracy_served"]),
             fmt(b["accuracy_undefended"])) if (b := presets["benign"].get(name)) else
            ("", "", ""))]
         for name in ["none", *presets["benign"]]],
    )  # fmt: skip


def _poisoning_part(report: Report, results: dict) -> None:
    poison = results["poisoning"]
    report.add_table(
        f"Prediction poisoning against {POISON_ATTACK} (probability- and label-trained thief)",
        ["defense", "setting", "defender acc.", "L1 distortion", "thief acc. (probs)",
         "fidelity (probs)", "thief acc. (labels)"],
        [
            [
                r["defense"],
                f"{r['parameter']}={r['value']}" if r["parameter"] else "",
                fmt(r["defender_accuracy"]),
                fmt(r["distortion_l1"], 3),
                fmt(r["thief_accuracy_probs"]),
                fmt(r["fidelity_probs"]),
                fmt(r["thief_accuracy_labels"]),
            ]
            for r in poison
        ],
    )  # fmt: skip
    base = poison[0]
    by_defense: dict[str, list[dict]] = {}
    for r in poison[1:]:
        by_defense.setdefault(r["defense"], []).append(r)
    for key, xlabel, name in (
        ("distortion_l1", "mean L1 distortion of answers", "poisoning_distortion.png"),
        ("defender_accuracy", "defender top-1 accuracy", "poisoning_utility.png"),
    ):
        series = {
            d: ([base[key]] + [r[key] for r in rs], [base["thief_accuracy_probs"]]
                + [r["thief_accuracy_probs"] for r in rs])
            for d, rs in by_defense.items()
        }  # fmt: skip
        report.add_figure(
            name,
            line_plot(
                series,
                title="Thief accuracy (probability-trained)",
                xlabel=xlabel,
                ylabel="thief test accuracy",
            ),  # fmt: skip
            f"Thief accuracy against {xlabel}; each line starts at the undefended point.",
        )


if __name__ == "__main__":
    run_study(main)
