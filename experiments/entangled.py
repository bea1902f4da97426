"""Study: does an entangled watermark (EWE, Jia et al. 2021) survive model extraction —
and every removal attack — where the same trigger set without entanglement does not?

    python experiments/entangled.py [--dataset digits|idx:DIR] [--seed S] [--budgets 1000,2500]

Per seed: a CNN is trained on the victim split and fine-tuned twice with one
``entangled`` key's triggers (source-class images with a secret white square, labelled
with a secret target class): once with EWE's soft nearest-neighbour entanglement (κ = 32
by default, the paper's MNIST setting; ``--factor`` sets it) and once without it (κ = 0:
the same triggers learnt by cross-entropy alone, the ablation). Null models (independent
CNNs on the same data) calibrate the key. Each marked model then faces label-only
Knockoff thieves on the attacker split at each budget (capped at the split's size), a
probability-trained Knockoff thief, and the watermark study's removal and ambiguity
attacks; each copy is verified through queries alone (exact Poisson-binomial p-value
against the suspect's label prior, the calibrated threshold at FPR 1e-6).

Writes ``results/entangled/results.json``, ``report.md`` and a plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

import numpy as np  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import add_subset_option, subset  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.catalog import list_entries, load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.evaluation.watermark import after_attacks, evaluate_robustness  # noqa: E402
from vtrust.models import accuracy, build_model  # noqa: E402
from vtrust.models.recipes import default_config, train_model  # noqa: E402
from vtrust.report import Report, bar_plot  # noqa: E402
from vtrust.watermark import entangled  # noqa: E402
from vtrust.watermark.calibration import calibrate  # noqa: E402
from vtrust.watermark.dynamic import (  # noqa: E402
    DynamicWatermark,
    entangled_classes,
    new_dynamic_key,
    trigger_set,
)

REMOVAL_KINDS = ("fine-tune", "prune", "fine-prune", "quantize", "weight-noise", "weight-shift",
                 "distill", "overwrite", "ambiguity")  # fmt: skip
NO_ENTANGLEMENT = "no-entanglement"  # the ablation: the same triggers at κ = 0
FPR = 1e-6


def knockoff_entries(budgets: list[int], available: int) -> list:
    """Label-only Knockoff thieves on the attacker split at each budget (capped at what
    the split holds), and one probability-trained thief at the largest."""
    label_only = load_entry("attacks", "knockoff-attacker-400")
    probs = load_entry("attacks", "knockoff-attacker-probs")
    out, seen = [], set()
    for budget in sorted(min(b, available) for b in budgets):
        if budget in seen:
            continue
        seen.add(budget)
        params = dataclasses.replace(label_only.params, budget=budget)
        out.append(dataclasses.replace(label_only, name=f"knockoff-labels-{budget}", params=params))
    top = max(seen)
    params = dataclasses.replace(probs.params, budget=top)
    out.append(dataclasses.replace(probs, name=f"knockoff-probs-{top}", params=params))
    return out


def study(splits, args, attacks) -> dict:
    progress.stage("[entangled] plain CNN")
    plain = train_model(splits, "cnn", seed=args.seed)
    victim_counts = np.bincount(splits.victim.y, minlength=splits.n_classes)
    triggers = args.triggers or int(min(400, 0.9 * victim_counts.min()))
    key = new_dynamic_key(splits, style="entangled", triggers=triggers, seed=args.seed + 303)
    source, target = entangled_classes(key)
    progress.stage(f"[entangled] null: {args.null_models} independent CNNs calibrate the key")
    key = key.with_calibration(calibrate(key, splits, "cnn", models=args.null_models))
    inputs, labels = trigger_set(key, splits)
    tuned = default_config("cnn", seed=args.seed)
    config = dataclasses.replace(tuned, epochs=args.epochs, cosine=False, lr=tuned.lr / 4)
    out = {"accuracy_plain": plain.test_accuracy, "triggers": triggers, "source": source,
           "target": target, "null": key.calibration.to_json(), "variants": {}}  # fmt: skip
    variants = {"ewe": args.factor, NO_ENTANGLEMENT: 0.0}  # κ of each marked model
    for variant, factor in variants.items():
        progress.stage(f"[entangled] {variant}: κ = {factor:g}, {triggers} triggers")
        model = build_model("cnn", splits.input_shape, splits.n_classes, seed=args.seed)
        model.load_state_dict(plain.model.state_dict())
        started = time.perf_counter()
        entangled.entangle(model, splits.victim, inputs, int(labels[0]), config,
                           entangled.EntangleParams(factor=factor, every=args.every))  # fmt: skip
        seconds = time.perf_counter() - started
        report = evaluate_robustness(model, key, splits, attacks, fpr=FPR, seed=args.seed)
        out["variants"][variant] = {
            "factor": factor,
            "embed_seconds": seconds,
            "accuracy_marked": accuracy(model, splits.test),
            "trigger_accuracy": DynamicWatermark(key, splits).trigger_accuracy(model),
            "robustness": report,
            "after_attacks": after_attacks(report),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", default="1000,2500",
                        help="label-only Knockoff budgets (capped at the split)")  # fmt: skip
    parser.add_argument("--triggers", type=int, default=0,
                        help="triggers (default: 90 %% of the rarest class, ≤ 400)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=10, help="embedding epochs")
    parser.add_argument("--factor", type=float, default=entangled.EntangleParams.factor,
                        help="κ of the EWE variant (the ablation is always κ = 0)")  # fmt: skip
    parser.add_argument("--every", type=int, default=entangled.EntangleParams.every,
                        help="clean batches per watermark batch")  # fmt: skip
    parser.add_argument("--null-models", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("results/entangled"))
    add_subset_option(parser, "attacks", what="removal and ambiguity attacks")
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    try:
        budgets = [int(b) for b in args.budgets.split(",")]
    except ValueError:
        parser.error(f"--budgets: comma-separated query counts, got {args.budgets!r}")
    if not budgets or min(budgets) < 1:
        parser.error("--budgets must be positive")
    if not args.factor > 0:
        parser.error(f"--factor must be positive, got {args.factor}")
    removal = [e for e in list_entries("attacks") if e.kind in REMOVAL_KINDS]
    chosen = set(subset(parser, "attacks", args.attacks, [e.name for e in removal]))
    if run_over_seeds(__file__, args, study="entangled"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=0)
    attacks = knockoff_entries(budgets, len(splits.attacker))
    attacks += [e for e in removal if e.name in chosen]
    results = {"dataset": args.dataset, "seed": args.seed, **study(splits, args, attacks)}
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Entangled watermarks (EWE) — {results['dataset']}, seed {results['seed']}")
    null = results["null"]
    report.add_text(
        f"{results['triggers']} triggers: class {results['source']} images with a secret "
        f"square, labelled {results['target']}. Plain CNN accuracy "
        f"{results['accuracy_plain']:.4f}. Null: {len(null['scores'])} independent CNNs, "
        f"trigger accuracy mean {null['mean']:.4f}, max {max(null['scores']):.4f}."
    )
    rows, bars = [], {}
    for variant, v in results["variants"].items():
        rows.append([variant, f"{v['accuracy_marked']:.4f}", f"{v['trigger_accuracy']:.3f}",
                     f"{v['robustness']['baseline']['p_value']:.3g}", "", "", ""])  # fmt: skip
        for attack, a in v["after_attacks"].items():
            if a["p_value"] is None:
                rows.append([variant, "", "", "", attack, "(no usable copy)", ""])
                continue
            rows.append([variant, "", "", "", attack, f"{a['score']:.3f}",
                         f"{a['p_value']:.3g}" + (" owned" if a["owned"] else "")])  # fmt: skip
            if attack.startswith("knockoff"):
                bars[f"{variant} {attack}"] = a["score"]
    report.add_table(
        "Marked models and their attacked copies (score: trigger accuracy of the attacker's "
        "best copy that keeps the accuracy floor)",
        ["variant", "accuracy", "trigger acc.", "p (model)", "attack", "score", "p (copy)"],
        rows,
    )
    bars["null mean"] = null["mean"]
    report.add_figure(
        "thieves.png",
        bar_plot(bars, title="Trigger accuracy of Knockoff thieves", ylabel="trigger accuracy"),
        "Trigger accuracy of each Knockoff thief, EWE against the same triggers without "
        "entanglement, beside independent models (the null).",
    )
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[entangled] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
