"""Study: ownership evidence that survives model extraction — answer watermarks (DAWN)
traced through every extraction attack, dataset inference, a null population of
independently trained models, and the one calibrated verdict.

    python experiments/ownership.py [--dataset digits|idx:DIR] [--seed S] [--null-models N]

Per seed (the seed drives the victim's and the thieves' training and the attacks; the
data split is the same for all, so one null population serves every seed): a digits
MLP victim carrying a static watermark is served behind an answer
watermark (rate 0.5 %, and 2 % for comparison) to ten benign clients and, one by one,
to each extraction attack's thief under its own client id; each thief is traced over
all clients' records. A sybil thief spreads 1,000 natural-image queries over 250 ids
among 100 benign clients. Dataset inference tests stolen copies (the file itself,
fine-tuned, distilled, Knockoff thieves) and independent models. A population of null
models (three architectures, the attacker split or three quarters of it — never the
victim's data) calibrates every kind of evidence; the last 20 are held back to measure
the combined verdict's false positives beside each kind's.

Writes ``results/ownership/results.json``, ``report.md`` and a plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import replace
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

import numpy as np  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.attacks.base import AttackerResources  # noqa: E402
from vtrust.catalog import load_entry  # noqa: E402
from vtrust.data import load_dataset, natural_image_pool  # noqa: E402
from vtrust.defenses.deployment import Deployment  # noqa: E402
from vtrust.evaluation.defenses import benign_traffic  # noqa: E402
from vtrust.models import accuracy, agreement  # noqa: E402
from vtrust.models.recipes import default_config, train_model  # noqa: E402
from vtrust.ownership.answer_evidence import evidence as mark_evidence  # noqa: E402
from vtrust.ownership.answer_evidence import suspect_answers, trace  # noqa: E402
from vtrust.ownership.evidence import OwnerSide  # noqa: E402
from vtrust.ownership.null_population import population  # noqa: E402
from vtrust.ownership.verdict import calibrate_kinds, combine  # noqa: E402
from vtrust.report import Report, bar_plot  # noqa: E402
from vtrust.watermark.static import StaticWatermark, new_static_key  # noqa: E402

# the catalog's extraction attacks whose thieves reach fidelity ≥ 0.8 on digits in the
# attacks study (eqsolve, also ≥ 0.8, applies to softmax victims only)
EXTRACTION = ("knockoff-attacker-400", "knockoff-attacker-probs", "jbda", "jb-top3", "jb-self")
REMOVAL = ("ftal", "distill-soft", "distill-labels")
RATES = {"default": 0.005, "high": 0.02}
FPR = 1e-6
HELD_BACK = 20  # null models kept out of the calibration (at most a fifth of them)
SPLIT_SEED = 0  # every seed uses the same data split, so the null population is shared


def marked_victim(splits, seed):
    """The owner's MLP with a static mark (a short fine-tune, as `watermark embed` does)."""
    model = train_model(splits, "mlp", seed=seed).model
    before = accuracy(model, splits.test)
    key = new_static_key(model, bits=256, seed=seed)  # seeded: an experiment, insecure
    tuned = default_config("mlp", seed=seed)
    config = replace(tuned, epochs=20, cosine=False, lr=tuned.lr / 2)
    StaticWatermark(key).embed(model, splits.victim, config)
    return model, key, {"accuracy_plain": before, "accuracy_marked": accuracy(model, splits.test)}


def serve_benign(oracle, splits, clients, per_client, seed):
    """Benign traffic; its served accuracy against the model's own on the same queries."""
    served, own = [], []
    for client, x in benign_traffic(splits.test, clients=clients, per_client=per_client, seed=seed):
        served.append(oracle.query(x, client).argmax(axis=1))
        own.append(oracle.target.predict(x))
    return np.concatenate(served), np.concatenate(own)


def dawn_study(victim, splits, rate, seed, attacks=EXTRACTION, radius=None):
    """Each extraction thief behind its own answer-watermarked oracle (``radius``: the
    near-duplicate radius, default the catalog's), after ten benign clients; traced over
    all that oracle's records. Returns the table, the thieves and each oracle's records."""
    table, thieves, logs, disagreement = {}, {}, {}, []
    for name in attacks:
        oracle = Deployment.of(["dawn"]).oracle(victim, splits.victim, seed=seed)
        dawn = oracle.defenses[-1]
        dawn.params = replace(dawn.params, rate=rate,
                              radius=dawn.params.radius if radius is None else radius)  # fmt: skip
        served, own = serve_benign(oracle, splits, 10, 200, seed)
        disagreement.append(float(np.mean(served != own)))
        progress.stage(f"[ownership] rate {rate:g}: {name} steals after 10 benign clients")
        attack = load_entry("attacks", name).build()
        result = attack.run(AttackerResources(oracle, data=splits.attacker, client_id=name),
                            seed=seed)  # fmt: skip
        records = list(dawn.store)
        overall, ranked = trace(result.thief, records, splits.n_classes)
        order = [e.clients[0] for e in ranked]
        own_test = ranked[order.index(name)] if name in order else None
        table[name] = {"queries": result.queries,
                       "fidelity": agreement(result.thief, victim, splits.test.x),
                       "p_value": overall.p_value, "agreements": overall.agreements,
                       "informative": overall.informative,
                       "own_p_value": own_test.p_value if own_test else 1.0,
                       "rank": order.index(name) + 1 if name in order else None,
                       "clients": len(ranked), "records": len(records)}  # fmt: skip
        thieves[name], logs[name] = result.thief, records
    benign = {"served_vs_model_disagreement": float(np.mean(disagreement)), "rate": rate}
    return {"rate": rate, "benign": benign, "attacks": table}, thieves, logs


def sybil_study(victim, splits, rate, seed, ids=250, per_id=4, benign_clients=100):
    """1,000 natural-image queries over ``ids`` ids among benign clients; the thief is
    traced over all records, and the ids implicated are compared with the sybil's."""
    oracle = Deployment.of(["dawn"]).oracle(victim, splits.victim, seed=seed)
    dawn = oracle.defenses[-1]
    dawn.params = replace(dawn.params, rate=rate)
    x = natural_image_pool(ids * per_id, splits.input_shape, seed=seed)
    benign = benign_traffic(splits.test, clients=benign_clients, per_client=20, seed=seed)
    answers = []
    for i in range(ids):
        answers.append(oracle.query(x[i * per_id : (i + 1) * per_id], f"sybil-{i:03d}"))
        if i % (ids // benign_clients or 1) == 0 and benign:
            client, bx = benign.pop(0)
            oracle.query(bx, client)
    from vtrust.models import build_model, fit_arrays

    thief = build_model("mlp", splits.input_shape, splits.n_classes, seed=seed)
    fit_arrays(thief, x, np.concatenate(answers).argmax(axis=1), default_config("mlp", seed=seed))
    records = list(dawn.store)
    overall = mark_evidence(records, suspect_answers(thief, records), splits.n_classes)
    sybils = {c for c in overall.implicated if c.startswith("sybil-")}
    return {
        "rate": rate,
        "ids": ids,
        "per_id": per_id,
        "benign_clients": benign_clients,
        "fidelity": agreement(thief, victim, splits.test.x),
        "p_value": overall.p_value,
        "agreements": overall.agreements,
        "informative": overall.informative,
        "implicated": len(overall.implicated),
        "implicated_sybils": len(sybils),
        "implicated_benign": len(overall.implicated) - len(sybils),
    }


def study(splits, args) -> dict:
    seed = args.seed
    progress.stage("[ownership] victim: train, embed a static mark")
    victim, key, accuracy_info = marked_victim(splits, seed)
    dawn, stolen, logs = {}, {}, {}
    for label, rate in RATES.items():
        dawn[label], thieves, rate_logs = dawn_study(victim, splits, rate, seed, args.attacks,
                                                     args.radius)  # fmt: skip
        if label == "default":
            stolen.update({f"extraction:{k}": v for k, v in thieves.items()})
            logs = {f"extraction:{k}": v for k, v in rate_logs.items()}
    sybil = {label: sybil_study(victim, splits, rate, seed) for label, rate in RATES.items()}
    for name in REMOVAL:
        progress.stage(f"[ownership] removal {name}")
        attack = load_entry("attacks", name).build()
        strength = attack.params.strengths[-1]
        stolen[f"removal:{name}"] = attack.apply(
            victim, splits.attacker, float(strength), seed=seed
        )
    stolen["copy"] = victim
    progress.stage("[ownership] dataset inference: fit the score on the owner's model")
    owner = OwnerSide.with_dataset_inference(
        victim,
        splits,
        samples=args.di_samples,
        key=key,
        records=logs[f"extraction:{args.attacks[0]}"],  # null models are tested on this log
    )
    progress.stage(f"[ownership] null population: {args.null_models} models")
    null = population(splits, args.null_models, cache=args.cache)
    null_evidence = []
    for i, (member, model) in enumerate(null):
        if i % 10 == 0:
            progress.stage(f"[ownership] null evidence {i}/{len(null)}")
        null_evidence.append((member, owner.evidence(model)))
    back = min(HELD_BACK, len(null_evidence) // 5)
    split = len(null_evidence) - back
    calibrating, held_back = null_evidence[:split], null_evidence[split:]
    calibration = calibrate_kinds(e for _, e in calibrating)

    def decide(evidence):
        verdict = combine(evidence, FPR, calibration).to_json()
        return {
            "owned": verdict["owned"],
            "combined_p_value": verdict["combined_p_value"],
            "kinds": {
                k["kind"]: {
                    "p_value": k["p_value"],
                    "calibrated_p_value": k["calibrated_p_value"],
                    "passes": k["passes"],
                }
                for k in verdict["evidence"]
            },
        }

    progress.stage("[ownership] verdicts on the stolen copies and the held-back null models")
    suspects = {}
    for name, model in stolen.items():  # a thief is tested on the log of the oracle it used
        records = logs.get(name, owner.records)
        suspects[name] = decide(dataclasses.replace(owner, records=records).evidence(model))
    for name, model in stolen.items():
        suspects[name]["fidelity"] = agreement(model, victim, splits.test.x)
    independents = [decide(e) for _, e in held_back]
    calibrated_fp = {
        kind: cal.false_positives(FPR / len(calibration)) for kind, cal in calibration.items()
    }
    return {
        "dataset": splits.spec,
        "seed": seed,
        **accuracy_info,
        "fpr": FPR,
        "dawn": dawn,
        "sybil": sybil,
        "suspects": suspects,
        "null": {
            "models": len(null),
            "calibrating": len(calibrating),
            "held_back": len(held_back),
            "archs": sorted({m.arch for m, _ in null}),
            "calibration": {
                k: {
                    "mean": c.mean,
                    "std": c.std,
                    "threshold": c.threshold(FPR / len(calibration)),
                    "false_positives": calibrated_fp[k],
                }
                for k, c in calibration.items()
            },
            "held_back_owned": sum(v["owned"] for v in independents),
            "held_back_per_kind": {
                k: sum(v["kinds"][k]["passes"] for v in independents) for k in calibration
            },
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--null-models", type=int, default=120)
    parser.add_argument(
        "--attacks",
        type=lambda text: tuple(text.split(",")),
        default=EXTRACTION,
        help="extraction attacks (comma-separated)",
    )
    parser.add_argument("--di-samples", type=int, default=100)
    parser.add_argument("--radius", type=float, default=None,
                        help="the answer marks' near-duplicate radius (default 0.02)")  # fmt: skip
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="null-population cache folder (default: OUT/.null-cache)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/ownership"))
    add_seed_options(parser, jobs=2)
    args = parser.parse_args()
    if args.cache is None:  # one cache for every seed's run (the children get it too)
        args.cache = args.out / ".null-cache"
        sys.argv += ["--cache", str(args.cache)]
    if args.seeds > 1 and not args.recombine:  # train the null population once, up front
        population(load_dataset(args.dataset, seed=SPLIT_SEED), args.null_models, cache=args.cache)
    if run_over_seeds(__file__, args, study="ownership"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=SPLIT_SEED)
    results = study(splits, args)
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    """The README's tables for this run (``readme_results.ownership``) and a plot."""
    from readme_results import render_study

    report = Report(f"Ownership after extraction — {results['dataset']}, seed {results['seed']}")
    report.add_text(render_study("ownership", results))
    bars = {name: -np.log10(max(row["p_value"], 1e-300))
            for name, row in results["dawn"]["default"]["attacks"].items()}  # fmt: skip
    report.add_figure(
        "dawn.png",
        bar_plot(bars, title="Answer watermark (0.5 %): −log10 p per thief", ylabel="−log10 p"),
        "Each extraction thief's answer-watermark p-value over its oracle's records "
        "(−log10; 6 is p = 1e-6).",
    )
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[ownership] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
