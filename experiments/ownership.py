"""Study: ownership evidence that survives model extraction — answer watermarks (DAWN)
traced through every extraction attack, dataset inference, a null population of
independently trained models, and the one calibrated verdict.

    python experiments/ownership.py [--dataset digits|idx:DIR] [--seed S] [--null-models N]

Per seed: a digits MLP victim carrying a static watermark is served behind an answer
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
from vtrust.ownership.dataset_inference import WalkParams  # noqa: E402
from vtrust.ownership.evidence import OwnerSide  # noqa: E402
from vtrust.ownership.null_population import population  # noqa: E402
from vtrust.ownership.verdict import calibrate_kinds, combine  # noqa: E402
from vtrust.report import Report, bar_plot  # noqa: E402
from vtrust.watermark.static import StaticWatermark, new_static_key  # noqa: E402

EXTRACTION = (
    "knockoff-attacker-400",
    "knockoff-attacker-probs",
    "knockoff-natural-2k",
    "knockoff-adaptive-2k",
    "jbda",
    "jb-top3",
    "jb-self",
    "copycat-2k",
    "activethief-kcenter-1k",
    "activethief-uncertainty-1k",
)
REMOVAL = ("ftal", "distill-soft", "distill-labels")
RATES = (0.005, 0.02)
FPR = 1e-6
HELD_BACK = 20
WALK = WalkParams(directions=5, step=0.05, max_steps=60)


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


def dawn_study(victim, splits, rate, seed):
    """Every extraction thief behind one answer-watermarked oracle, traced."""
    deployment = Deployment.of(["dawn"])
    oracle = deployment.oracle(victim, splits.victim, seed=seed)
    dawn = oracle.defenses[-1]
    dawn.params = replace(dawn.params, rate=rate)
    served, own = serve_benign(oracle, splits, 10, 200, seed)
    benign = {"served_vs_model_disagreement": float(np.mean(served != own)), "queries": len(served)}
    thieves, rows = {}, []
    for name in EXTRACTION:
        progress.stage(f"[ownership] rate {rate:g}: {name} steals as client {name}")
        attack = load_entry("attacks", name).build()
        resources = AttackerResources(oracle, data=splits.attacker, client_id=name)
        result = attack.run(resources, seed=seed)
        thief = result.thief
        overall, ranked = trace(thief, list(dawn.store), splits.n_classes)
        rank = (
            [e.clients[0] for e in ranked].index(name) + 1
            if any(e.clients[0] == name for e in ranked)
            else None
        )
        rows.append(
            {
                "attack": name,
                "queries": result.queries,
                "fidelity": agreement(thief, victim, splits.test.x),
                "p_value": overall.p_value,
                "agreements": overall.agreements,
                "informative": overall.informative,
                "rank": rank,
                "clients": len(ranked),
            }
        )
        thieves[name] = thief
    return (
        {"rate": rate, "benign": benign, "attacks": rows, "records": len(dawn.store)},
        thieves,
        list(dawn.store),
    )


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
    dawn, stolen = {}, {}
    records = None
    for rate in RATES:
        dawn[str(rate)], thieves, rate_records = dawn_study(victim, splits, rate, seed)
        if rate == RATES[0]:
            stolen.update({f"extraction:{k}": v for k, v in thieves.items()})
            records = rate_records
    sybil = [sybil_study(victim, splits, rate, seed) for rate in RATES]
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
        victim, splits, samples=args.di_samples, walk=WALK, key=key, records=records
    )
    progress.stage(f"[ownership] null population: {args.null_models} models")
    null = population(splits, args.null_models, cache=args.cache or args.out / ".null-cache")
    null_evidence = []
    for i, (member, model) in enumerate(null):
        if i % 10 == 0:
            progress.stage(f"[ownership] null evidence {i}/{len(null)}")
        null_evidence.append((member, owner.evidence(model)))
    calibrating, held_back = null_evidence[:-HELD_BACK], null_evidence[-HELD_BACK:]
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
    suspects = {name: decide(owner.evidence(model)) for name, model in stolen.items()}
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
    parser.add_argument("--di-samples", type=int, default=100)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="null-population cache folder (default: OUT/.null-cache)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/ownership"))
    add_seed_options(parser, jobs=2)
    args = parser.parse_args()
    if run_over_seeds(__file__, args, study="ownership"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    results = study(splits, args)
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Ownership after extraction — {results['dataset']}, seed {results['seed']}")
    for rate, block in results["dawn"].items():
        rows = [
            [
                r["attack"],
                r["queries"],
                f"{r['fidelity']:.3f}",
                f"{r['p_value']:.2g}",
                f"{r['agreements']}/{r['informative']}",
                r["rank"],
                r["clients"],
            ]
            for r in block["attacks"]
        ]
        report.add_table(
            f"Answer watermark at rate {float(rate):.1%}: each thief traced over all records "
            f"(benign answers differing from the model's: "
            f"{block['benign']['served_vs_model_disagreement']:.2%})",
            ["attack", "queries", "fidelity", "p", "agree/informative", "thief's rank", "clients"],
            rows,
        )
    report.add_table(
        "Sybil thief (1,000 queries over 250 ids among 100 benign clients)",
        [
            "rate",
            "fidelity",
            "p",
            "agree/informative",
            "implicated sybil ids",
            "implicated benign ids",
        ],
        [
            [
                f"{s['rate']:.1%}",
                f"{s['fidelity']:.3f}",
                f"{s['p_value']:.2g}",
                f"{s['agreements']}/{s['informative']}",
                s["implicated_sybils"],
                s["implicated_benign"],
            ]
            for s in results["sybil"]
        ],
    )
    kinds = sorted(results["null"]["calibration"])
    rows = [
        [name, f"{s['fidelity']:.3f}"]
        + [f"{s['kinds'][k]['calibrated_p_value']:.2g}" for k in kinds]
        + [f"{s['combined_p_value']:.2g}", "yes" if s["owned"] else "no"]
        for name, s in results["suspects"].items()
    ]
    report.add_table(
        f"One verdict (Bonferroni, FPR {results['fpr']:g}) on stolen copies: calibrated p per kind",
        ["suspect", "fidelity", *kinds, "combined", "owned"],
        rows,
    )
    null = results["null"]
    rows = [
        [
            k,
            f"{c['mean']:.2f}",
            f"{c['std']:.2f}",
            f"{c['threshold']:.2g}",
            c["false_positives"],
            null["held_back_per_kind"][k],
        ]
        for k, c in null["calibration"].items()
    ]
    rows.append(["combined", "", "", "", "", null["held_back_owned"]])
    report.add_table(
        f"Null population: {null['models']} models ({', '.join(null['archs'])}); "
        f"{null['calibrating']} calibrate, {null['held_back']} held back",
        ["kind", "mean −log10 p", "std", "threshold (p)", "calibrating FP", "held-back FP"],
        rows,
    )
    bars = {
        r["attack"]: -np.log10(max(r["p_value"], 1e-300))
        for r in results["dawn"][str(RATES[0])]["attacks"]
    }
    report.add_figure(
        "dawn.png",
        bar_plot(bars, title="Answer watermark (0.5 %): −log10 p per thief", ylabel="−log10 p"),
        "Each extraction thief's answer-watermark p-value (−log10; 6 = 1e-6).",
    )
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[ownership] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
