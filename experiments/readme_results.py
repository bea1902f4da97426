"""Regenerate the README's results section from the studies' ``results.json`` files.

    python experiments/readme_results.py [--results DIR] [--readme README.md]

Everything between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is replaced
by tables built from ``results/<study>/results.json`` (studies without results are
listed as not run). A study run over several seeds (``across_seeds``) shows each figure
as mean (min–max) over the seeds; a figure the same in every seed is shown once. Where a
row reproduces a published result, ``experiments/papers.toml`` puts the paper's figure
and setting beside vtrust's. No figure in that section is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomllib
from mnist_runs import SUFFIX, study_command

from vtrust.evaluation.spread import is_spread, spread
from vtrust.report import markdown_table

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PAPERS = Path(__file__).resolve().with_name("papers.toml")


def _load(results: Path, study: str) -> dict[str, Any] | None:
    path = results / study / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(value: Any, digits: int = 3, style: str = "f") -> str:
    """A figure: a number, a spread as ``mean (min–max)``, a count of flags as ``k/n``
    (``style`` "g" for p-values: ``digits`` significant digits)."""
    spec = f".{digits}{style}"
    if value is None:
        return "—"
    if is_spread(value):
        missing = f", {value['missing']} seeds none" if value.get("missing") else ""
        return (f"{value['mean']:{spec}} ({value['min']:{spec}}–"
                f"{value['max']:{spec}}{missing})")  # fmt: skip
    if isinstance(value, dict) and "true" in value:
        missing = f" ({value['missing']} none)" if value.get("missing") else ""
        return f"{value['true']}/{value['n']} seeds{missing}"
    if isinstance(value, dict) and "per_seed" in value:
        return " / ".join(_f(v, digits, style) for v in value["per_seed"])
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:{spec}}"


def _values(value: Any) -> list[Any]:
    """A figure's per-seed values (one value when it was the same in every seed)."""
    return list(value["values"]) if is_spread(value) else [value]


def _per_seed(fn: Callable[..., float], *figures: Any) -> Any:
    """``fn`` applied seed by seed to figures that may be spreads; a spread again."""
    columns = [_values(f) for f in figures]
    n = max(len(c) for c in columns)
    rows = [[c[i] if len(c) > 1 else c[0] for c in columns] for i in range(n)]
    results = [fn(*row) for row in rows]
    return results[0] if len(set(results)) == 1 else spread(results)


def _total(count: Any, n: int) -> int:
    """A per-seed count summed over the ``n`` seeds (a count the same in every seed was
    kept once)."""
    return sum(count["values"]) if is_spread(count) else count * n


def _mean(value: Any) -> Any:
    """A figure's mean over seeds (the figure itself when it did not vary)."""
    return value["mean"] if is_spread(value) else value


def _always(flag: Any) -> bool:
    return flag is True


def _never(flag: Any) -> bool:
    return flag is False


def _data(r: dict) -> str:
    """The study's dataset as a reader names it (``idx:DIR`` runs are on MNIST's files)."""
    dataset = str(r.get("dataset", "digits"))
    return "MNIST" if dataset.startswith("idx:") else dataset.capitalize()


def attacks(r: dict, n: int) -> str:
    rows = []
    for name, a in sorted(r["attacks"].items()):
        if a["category"] in ("extraction", "direct"):
            rows.append([name, a["category"], _f(a.get("queries", 0)), _f(a["thief_accuracy"]),
                         _f(a["fidelity"])])  # fmt: skip
    return markdown_table(["attack", "kind", "queries", "thief accuracy", "fidelity"], rows)


def watermark(r: dict, n: int) -> str:
    rows = []
    for kind in ("static", "dynamic"):
        w = r[kind]
        outcomes = w["robustness"]["attacks"]
        survived = [a["attack"] for a in outcomes if _always(a["watermark_survives"])]
        removed = [a["attack"] + ("" if _never(a["watermark_survives"]) else
                                  f" ({_f(a['watermark_survives'])} survive)")
                   for a in outcomes if not _always(a["watermark_survives"])]  # fmt: skip
        rows.append([kind, _f(w["accuracy_plain"], 4), _f(w["accuracy_marked"], 4),
                     _f(w.get("null_false_positives")), len(survived),
                     ", ".join(removed) or "none"])  # fmt: skip
    text = markdown_table(["mark", "accuracy plain", "marked", "false positives on null models",
                           "attacks survived (every seed)", "removed by"], rows)  # fmt: skip
    after = [[kind, name, _f(a["p_value"], 2, "g"), _f(a["score"], 3), _f(a.get("owned"))]
             for kind in ("static", "dynamic")
             for name, a in r[kind].get("after_attacks", {}).items()]  # fmt: skip
    if after:
        text += ("\n\nAfter each attack, its attacked copy that keeps the accuracy floor "
                 "and has the highest p-value (— : no copy kept the floor; score: matched "
                 "bits for the static mark — BER is 1 − score — trigger accuracy for the "
                 "dynamic one; with the calibrated key ownership also needs the score "
                 "above the null models' threshold):\n\n") + markdown_table(
            ["mark", "attack", "binomial p-value", "score", "still owned"], after)  # fmt: skip
    return text


def defenses(r: dict, n: int) -> str:
    parts = [f"{_data(r)}, {str(r.get('victim', 'mlp')).upper()} victim (test accuracy "
             f"{_f(r['victim_accuracy'], 4)})."]  # fmt: skip
    if "false_positives" in r:
        flagged = [f"{name} {_total(v['flagged'], n)} of {_total(v['clients'], n)}"
                   for name, v in r["false_positives"].items()]  # fmt: skip
        parts.append("Benign clients flagged: " + ", ".join(flagged) + ".")
    if "detection" in r:
        rows = [[d["attack"], d["detector"],
                 f"{_total(d['detected'], n)} of {_total(d['clients'], n)}",
                 _f(d["median_queries"], 0)] for d in r["detection"]]  # fmt: skip
        parts.append(markdown_table(["attack", "detector", "attacking clients flagged (all "
                                     "seeds)", "median queries to the flag"], rows))  # fmt: skip
    poison = [[p["defense"], f"{p['parameter']}={p['value']}" if p["parameter"] else "",
               _f(p["defender_accuracy"]), _f(p["thief_accuracy_probs"]),
               _f(p["thief_accuracy_labels"])] for p in r.get("poisoning", [])]  # fmt: skip
    if poison:
        parts.append("Prediction poisoning against `knockoff-attacker-probs` (defender's "
                     "top-1 accuracy against the thief's test accuracy):\n\n" + markdown_table(
            ["defense", "setting", "defender accuracy", "thief (probabilities)",
             "thief (labels)"], poison))  # fmt: skip
    if "presets" in r:
        parts.append(_acting(r["presets"]))
    return "\n\n".join(parts)


def _acting(presets: dict) -> str:
    """The acting deployments: the natural-image thief behind each, and benign traffic."""
    cell = {(t["defense"], t["output"]): t for t in presets["thieves"]}
    rows = []
    for name in dict.fromkeys(t["defense"] for t in presets["thieves"]):
        probs, labels = cell[name, "probs"], cell[name, "labels"]
        benign = presets["benign"].get(name)
        lost = (_per_seed(lambda a, b: 100 * (a - b), benign["accuracy_undefended"],
                          benign["accuracy_served"]) if benign else None)  # fmt: skip
        rows.append([name, _f(probs["fidelity"]), _f(labels["fidelity"]),
                     _f(probs["queries"], 0), _f(benign["refused"]) if benign else "—",
                     _f(lost, 2) if benign else "—"])  # fmt: skip
    attack = presets["thieves"][0]["attack"]
    budget = presets["thieves"][0]["budget"]
    clients = next(iter(presets["benign"].values()), {})
    return (f"Acting deployments: `{attack}` at {budget} queries, and "
            f"{_f(clients.get('clients'))} benign clients × "
            f"{_f(clients.get('queries_per_client'))} test queries:\n\n") + markdown_table(
        ["deployment", "thief fidelity (probabilities)", "thief fidelity (labels)",
         "queries answered", "benign refused", "benign accuracy lost (pt)"], rows)  # fmt: skip


def proofs(r: dict, n: int) -> str:
    t = r["trained"]
    text = (
        f"Quantised quadratic network ({r['dataset']}, circuit `{t['circuit']}`): float "
        f"accuracy {_f(t['float_accuracy'], 4)}, circuit {_f(t['circuit_accuracy'], 4)}.\n\n"
    )
    if "timit" not in r:
        return text
    c = r["timit"]
    layered = r.get("timit_layered")
    rows = [["field forward / torch float32", _f(c["field_over_torch"], 2), "≤ 25"],
            ["extra prover / field forward (fused)", _f(c["extra_prover_over_field"]), "≤ 0.10"],
            *([["extra prover / field forward (layered)",
                _f(layered["extra_prover_over_field"]), "≤ 0.10"]] if layered else []),
            ["verifier / field forward", _f(c["verify_over_field"]), "≤ 0.10"],
            ["execute + prove (s)", _f(c["prove_s"], 2), "< 23.9 (SafetyNets)"],
            ["proof (KB)", _f(c["proof_kb"], 1), ""],
            *([["Fiat–Shamir security (bits)", _f(t["noninteractive_bits"], 1), "≥ 100"]]
              if "noninteractive_bits" in t else [])]  # fmt: skip
    return text + "TIMIT shape (batch 512, 1845-2000-2000-2000-183):\n\n" + markdown_table(
        ["measure", "value", "goal"], rows)  # fmt: skip


INT8_GOALS = {  # the goals; zkCNN measured on a machine of this kind (its anchor)
    "lenet5@1": ("≤ 100 ms; zkCNN 220–250 ms", "≤ 50", "zkCNN 71"),
    "lenet5@16": ("≤ 800 ms; zkCNN 2,400 ms", "≤ 50", "zkCNN 154"),
    "cifar_cnn@1": ("≤ 2,500 ms; DeepProve 1,242 ms on 64 cores", "DeepProve 599", ""),
    "vgg11@1": ("≤ 8,000 ms; zkCNN 24,000 ms", "", "zkCNN 304"),
}


def int8(r: dict, n: int) -> str:
    acc = r["accuracy"]
    rows = [[name, _f(m["float_accuracy"], 4), _f(m["per_tensor"]["accuracy"], 4),
             _f(m["per_channel"]["accuracy"], 4), _f(m["loss_pt"], 2)]
            for name, m in acc["models"].items()]  # fmt: skip
    text = f"Post-training int8 quantisation on {acc['dataset']}:\n\n" + markdown_table(
        ["model", "float", "int8 per tensor", "int8 per channel", "loss (pt, per tensor)"], rows
    )
    costs = r.get("costs") or {}
    if costs:
        rows = []
        for key, c in costs.items():
            goal = INT8_GOALS.get(key, ("", "", ""))
            rows.append([key, _f(c["execute_prove_s"] * 1000, 1), goal[0],
                         _f(c["verify_s"] * 1000, 1), goal[1], _f(c["proof_kb"], 1), goal[2],
                         _f(c["auxiliary_kb"], 1), _f(c["extra_prover_over_forward"], 2),
                         _f(c["verify_over_forward"], 2), _f(c["int8_over_torch"], 2)])  # fmt: skip
        text += ("\n\nProving (one thread, random int8 weights, the verifier holds the weights; "
                 "execute + prove includes building the network):\n\n") + markdown_table(
            ["shape@batch", "execute + prove ms", "goal / anchor", "verify ms", "goal",
             "proof KB", "anchor", "in the clear KB", "extra prover / int8 forward",
             "verify / int8 forward", "int8 forward / torch float32"], rows)  # fmt: skip
    probes = r.get("probes") or {}
    if probes:
        rows = [[kind, p["batch"], _f(p["build_s"] + p["forward_s"], 2), _f(p["extra_prover_s"], 2),
                 _f(p["verify_s"], 2), _f(p["peak_mb"], 0), _f(p["baseline_mb"], 0)]
                for kind, p in probes.items()]  # fmt: skip
        text += "\n\nMemory probes (each in its own process):\n\n" + markdown_table(
            ["probe", "batch", "build + forward s", "extra prover s", "verify s",
             "peak RSS MB (goals: conv ≤ 1,000, dense, VGG11 ≤ 2,000)",
             "of which the interpreter MB"],
            rows)  # fmt: skip
    return text + _int8_litert(r.get("litert") or {})


def _int8_litert(litert: dict) -> str:
    """The imported .tflite fixtures: int8 values differing from LiteRT's kernels."""
    if not litert:
        return ""
    order = ["reference", "builtin", "builtin, imported for reference", "XNNPACK (default)"]
    rows = []
    for name, row in litert.items():
        cases = sorted(row["kernels"].items(), key=lambda kv: (order + [kv[0]]).index(kv[0]))
        for kernels, c in cases:
            accuracy = "—"
            if "vtrust_accuracy" in c:
                accuracy = f"{_f(c['vtrust_accuracy'], 4)} / {_f(c['litert_accuracy'], 4)}"
            at_one = row["costs"]["@1"]
            logits = f"{c['logit_mismatches']} of {c['logit_values']}"
            rows.append([name, kernels, f"{c['images']} ({row['data']})",
                         sum(c["layers"].values()), logits,
                         accuracy, _f(at_one["extra_prover_s"] * 1000, 1),
                         _f(at_one["verify_s"] * 1000, 1), _f(at_one["proof_kb"], 1)])  # fmt: skip
    return ("\n\nImported `.tflite` int8 models (`vtrust int8 import`; int8 values that differ "
            "from LiteRT's kernels over every layer; proof at batch 1; `mnist_int8` was trained "
            "on digits upscaled to 28×28 — `tests/fixtures/make_tflite.py` — hence its MNIST "
            "accuracy):\n\n") + markdown_table(
        ["model", "LiteRT kernels", "images", "activations differing", "logits differing",
         "accuracy vtrust / LiteRT", "prove ms", "verify ms", "proof KB"], rows)  # fmt: skip


def scrambling(r: dict, n: int) -> str:
    rows = []
    for arch, m in r["models"].items():
        s = m["scrambled_accuracy"]
        best = max(m["thief"]["1.0"], key=lambda t: t["fraction"])
        share = _per_seed(lambda v: 100 * v, s["share_within_chance_plus_2pt"])
        rows.append([arch, _f(m["accuracy"], 4), _f(s["mean"], 4), _f(s["max"], 4),
                     f"{_f(share, 0)} %", _f(m["unscrambling_bit_exact"]),
                     _f(best["finetuned_accuracy"]), _f(best["scratch_accuracy"])])  # fmt: skip
    headers = ["model", "accuracy", "scrambled mean", "max", "keys ≤ chance+2", "bit-exact",
               "thief fine-tunes (10 %)", "scratch (10 %)"]  # fmt: skip
    return markdown_table(headers, rows)


def enclave(r: dict, n: int) -> str:
    s, t = r["slalom"], r["tampering"]
    fv = {row["n"]: row for row in r["freivalds"]}
    text = (f"Slalom: identical to the plain quantised network: "
            f"{_f(s['identical_to_plain_quantised'])}; accuracy {_f(s['accuracy'], 4)} (float "
            f"{_f(s['float_accuracy'], 4)}); tampering detected {_f(t['detected'])} of "
            f"{_f(t['trials'])}. Freivalds / recompute at n = 512: {_f(fv[512]['ratio'])} "
            "(goal ≤ 0.05).\n\n")  # fmt: skip
    rows = []
    for label, key in (("digits CNN", "throughput"), ("wide MLP", "throughput_wide")):
        for host, table in r[key].items():
            ratio = {row["split"]: row["speedup_over_all_inside"] for row in table}
            rows.append([label, host, _f(ratio["none"], 2), _f(ratio["slalom"], 2),
                         _f(ratio.get("last:1"), 2)])  # fmt: skip
    text += markdown_table(["model", "host", "no enclave", "slalom", "last:1"], rows)
    steal = [row for row in r["stealing"] if row["fraction"] == 0.1]
    text += (
        "\n\nThief accuracy (best of fine-tuning the outside part and training from "
        "scratch, 10 % of the attacker split):\n\n"
    )
    return text + markdown_table(
        ["split", "thief accuracy"],
        [[row["split"], _f(_per_seed(max, row["finetuned_accuracy"], row["scratch_accuracy"]))]
         for row in steal],
    )  # fmt: skip


def matrix(r: dict, n: int) -> str:
    summary, spec = r["summary"], r["spec"]
    rows = [[d, *(_f(summary[d][a]["fidelity"]) + _flag_mark(summary[d][a]["flag_rate"])
                  for a in spec["attacks"])] for d in spec["defenses"]]  # fmt: skip
    return (
        f"Thief fidelity against the MLP victim at {spec['budget']} queries (* = flagged in "
        "every seed, (*) = in some):\n\n"
    ) + markdown_table(["defense", *spec["attacks"]], rows)


def _flag_mark(rate: Any) -> str:
    values = _values(rate)
    if all(v for v in values):
        return "*"
    return "(*)" if any(values) else ""


def byom(r: dict, n: int) -> str:
    rows = [[name.replace("_audit", ""), _f(a["seconds"], 1), _f(a["accuracy"], 4),
             ", ".join(f"{k} {_f(v['fidelity'])}" for k, v in a["attacks"].items())]
            for name, a in r.items() if name.endswith("_audit")]  # fmt: skip
    text = f"The user's ONNX CNN on `{r['dataset']}`:\n\n" + markdown_table(
        ["audit", "seconds (goal 300 / 60)", "accuracy", "fidelity per attack"], rows
    )
    overhead = [[k, _f(v["runtime_ms"], 2), _f(v["oracle_ms"], 2), _f(v["ratio"])]
                for k, v in r["overhead"].items()]  # fmt: skip
    return (
        text
        + "\n\nOracle over the runtime at batch 256 (goal ≤ 1.10):\n\n"
        + markdown_table(["runtime", "runtime ms", "oracle ms", "ratio"], overhead)
    )


def ownership(r: dict, n: int) -> str:
    d, h = r["dawn"]["default"], r["dawn"]["high"]
    rows = [
        [
            name,
            _f(a["queries"]),
            _f(a["fidelity"]),
            _f(a["p_value"], 2, "g"),
            _f(a["own_p_value"], 2, "g"),
            _f(a["rank"], 1),
            _f(a["clients"]),
            _f(h["attacks"][name]["p_value"], 2, "g"),
            _f(h["attacks"][name]["rank"], 1),
        ]
        for name, a in d["attacks"].items()
    ]
    text = (
        f"Victim: {r['dataset']} MLP with a static mark (accuracy {_f(r['accuracy_plain'], 4)} → "
        f"{_f(r['accuracy_marked'], 4)}). Answer watermark: each thief behind its own "
        "oracle after ten benign clients (200 test-split queries each); benign answers "
        f"that differ from the model's: {_f(d['benign']['served_vs_model_disagreement'], 4)} "
        f"at rate 0.5 %, {_f(h['benign']['served_vs_model_disagreement'], 4)} at 2 %.\n\n"
    )
    text += markdown_table(
        [
            "thief (fidelity ≥ 0.8 in the attacks study)",
            "queries",
            "fidelity",
            "p (0.5 %)",
            "own-client p",
            "thief's rank",
            "clients",
            "p (2 %)",
            "rank (2 %)",
        ],
        rows,
    )
    rows = [
        [
            label,
            _f(s["fidelity"]),
            _f(s["p_value"], 2, "g"),
            _f(s["implicated_sybils"]),
            _f(s["implicated_benign"]),
        ]
        for label, s in r["sybil"].items()
    ]
    text += (
        "\n\nSybil thief: 1,000 natural-image queries over 250 ids × 4 among 100 benign "
        "clients:\n\n"
    )
    text += markdown_table(
        ["rate", "fidelity", "p (all records)", "sybil ids implicated", "benign ids implicated"],
        rows,
    )
    kinds = sorted(r["null"]["calibration"])
    rows = [
        [name, _f(s["fidelity"])]
        + [_f(s["kinds"][k]["calibrated_p_value"], 2, "g") for k in kinds]
        + [_f(s["combined_p_value"], 2, "g"), _f(s["owned"])]
        for name, s in r["suspects"].items()
    ]
    text += (
        f"\n\nOne verdict (Bonferroni over {len(kinds)} kinds, FPR {r['fpr']:g}), calibrated "
        "p-value per kind:\n\n"
    )
    text += markdown_table(["suspect", "fidelity", *kinds, "combined p", "owned"], rows)
    null = r["null"]
    rows = [
        [k, _f(c["threshold"], 2, "g"), _f(c["false_positives"]), _f(null["held_back_per_kind"][k])]
        for k, c in null["calibration"].items()
    ]
    rows.append(["combined verdict", "", "", _f(null["held_back_owned"])])
    text += (
        f"\n\nNull population: {_f(null['models'])} models ({', '.join(null['archs'])}; "
        f"attacker split or three quarters of it); {_f(null['calibrating'])} calibrate, "
        f"{_f(null['held_back'])} are held back:\n\n"
    )
    return text + markdown_table(
        [
            "evidence",
            "threshold (p)",
            "false positives (calibrating)",
            "false positives (held back)",
        ],
        rows,
    )


def entangled(r: dict, n: int) -> str:
    rows = [[variant, _f(v["factor"], 0), _f(r["accuracy_plain"], 4), _f(v["accuracy_marked"], 4),
             _f(v["trigger_accuracy"])] + [
                 f"{_f(a['score'])} (p {_f(a['p_value'], 2, 'g')})"
                 for name, a in v["after_attacks"].items() if name.startswith("knockoff")]
            for variant, v in r["variants"].items()]  # fmt: skip
    thieves = [a for a in next(iter(r["variants"].values()))["after_attacks"]
               if a.startswith("knockoff")]  # fmt: skip
    text = (f"{_f(r['triggers'])} triggers (source-class images with a secret square, one "
            f"target class); independent CNNs' trigger accuracy {_f(r['null']['mean'])}. "
            "Each Knockoff thief's trigger accuracy and Poisson-binomial p:\n\n")  # fmt: skip
    text += markdown_table(["variant", "κ", "accuracy plain", "marked", "trigger acc.", *thieves],
                           rows)  # fmt: skip
    removal = [[variant, name, _f(a["score"]), _f(a["p_value"], 2, "g"), _f(a.get("owned"))]
               for variant, v in r["variants"].items()
               for name, a in v["after_attacks"].items()
               if not name.startswith("knockoff")]  # fmt: skip
    if removal:
        text += ("\n\nRemoval attacks (the attacked copy that keeps the accuracy floor with "
                 "the highest p-value):\n\n") + markdown_table(
            ["variant", "attack", "trigger acc.", "p-value", "still owned"], removal)  # fmt: skip
    return text


def _caught(value: Any) -> str:
    """What caught a cheat, per seed where seeds differ ("NOT CAUGHT" for nothing)."""
    values = value["per_seed"] if isinstance(value, dict) and "per_seed" in value else [value]
    return " / ".join(str(v) if v else "NOT CAUGHT" for v in values)


def metering(r: dict, n: int) -> str:
    rows = [[_f(row["budget"]), _f(row["queries"]), _f(row["reconciled"]), _f(row["fidelity"])]
            for row in r["curve"]]  # fmt: skip
    text = (f"{_data(r)}: the in-distribution label-only thief (`{r['thief']}`) against a "
            "metered device "
            f"sold each budget; 90 % fidelity costs {_f(r['budget_to_90_fidelity'])} "
            "queries:\n\n")  # fmt: skip
    text += markdown_table(["budget", "answered", "owner reconciled", "thief fidelity"], rows)
    cheats = [[c["cheat"], _caught(c["caught_by"]), _f(c["answers_before_caught"])]
              for c in r["cheats"]]  # fmt: skip
    return text + "\n\nHosts that cheat their meter:\n\n" + markdown_table(
        ["cheat", "caught by", "answers before caught"], cheats)  # fmt: skip


def adaptive(r: dict, n: int) -> str:
    cell = {(row["attack"], row["defense"]): row for row in r["rows"]}
    defenses = list(dict.fromkeys(row["defense"] for row in r["rows"]))

    def shown(row: dict) -> str:
        caught = sum(1 for v in _values(row["ids_flagged"]) if v) * (
            1 if is_spread(row["ids_flagged"]) else n
        )
        return f"{_f(row['fidelity'])} ({_f(row['queries'], 0)} q; caught {caught}/{n})"

    order = list(dict.fromkeys(x for a, base in r["pairs"].items() for x in (base, a)))
    rows = [[a + ("" if a not in r["pairs"] else f" (adapts {r['pairs'][a]})"),
             *(shown(cell[a, d]) for d in defenses)] for a in order]  # fmt: skip
    sep = r.get("ood_separation")
    scores = ("" if sep is None else
              f" Out-of-distribution score against the natural pool (AUROC): PPCA density "
              f"{_f(sep['density'], 4)}, model confidence {_f(sep['confidence'], 4)}.")  # fmt: skip
    text = (f"{_data(r)} MLP victim (test accuracy {_f(r['victim_accuracy'], 4)}), probability "
            "answers. Each cell: thief fidelity, queries answered, and in how many seeds "
            "any of the thief's client ids was flagged." + scores + "\n\n")  # fmt: skip
    return text + markdown_table(["attack", *defenses], rows)


def stealing(r: dict, n: int) -> str:
    rows = [[name, a["victim"], _f(a["curve"][-1]["queries"], 0),
             " / ".join(_f(_mean(p["progress"]), 2) for p in a["curve"]),
             " / ".join(_f(_mean(p["fidelity"]), 2) for p in a["curve"])]
            for name, a in r["attacks"].items()]  # fmt: skip
    text = (f"{_data(r)}: the extraction warning's stealing progress beside each thief's "
            "fidelity after "
            f"10 / 25 / 50 / 100 % of its queries (means over seeds). Over every point: "
            f"correlation {_f(r['correlation'])}, mean |progress − fidelity| "
            f"{_f(r['mean_abs_error'])}.\n\n")  # fmt: skip
    text += markdown_table(["attack", "victim", "queries", "progress", "fidelity"], rows)
    benign = [[_f(b["queries_per_client"], 0),
               " / ".join(map(str, _values(b["flagged"]))) + f" of {_f(b['clients'])}",
               _f(b["progress_median"]), _f(b["progress_max"])] for b in r["benign"]]  # fmt: skip
    head = ["queries per client", "flagged (per seed)", "progress (median)", "progress (max)"]
    return text + (f"\n\nBenign clients (test images) against the alarm at progress "
                   f"{_f(r['threshold'], 2)}:\n\n") + markdown_table(head, benign)  # fmt: skip


def stealers(r: dict, n: int) -> str:
    cells = r["cells"]
    defenses = sorted(next(iter(cells.values())), key=lambda d: (d != "none", d))

    def shown(c: dict) -> str:
        curve = " → ".join(_f(_mean(p["fidelity"]), 2) for p in c["curve"])
        return f"{_f(c['fidelity'])} ({_f(c['queries'], 0)} q; curve {curve})"

    rows = [[a, *(shown(c[d]) for d in defenses)] for a, c in cells.items()]
    text = (f"{_data(r)} MLP victim (test accuracy {_f(r['victim_accuracy'], 4)}). Each cell: "
            "final thief fidelity, queries answered, and the mean fidelity after 10 → 25 → "
            "50 → 100 % of them:\n\n")  # fmt: skip
    return text + markdown_table(["attack", *defenses], rows)


def poisoning(r: dict, n: int) -> str:
    points = sorted(r["points"].items(), key=lambda item: item[0] != "none")  # baseline first
    rows = [[label, _f(p["fidelity"]), _f(p["benign_loss_pt"], 2), _f(p["distortion_l1"], 2)]
            for label, p in points]  # fmt: skip
    text = (f"{_data(r)}, {r['victim'].upper()} victim (test accuracy "
            f"{_f(r['victim_accuracy'], 4)}); the thief `{r['attack']}` (the attacker's own "
            f"in-distribution split, trained on probabilities) at {_f(r['budget'], 0)} "
            "queries behind each setting. Benign loss: top-1 accuracy points lost on the "
            "test split; IBM ART 1.20's reverse sigmoid (γ = 0.4) left this thief 0.317 "
            "in the issue's measurement:\n\n")  # fmt: skip
    return text + markdown_table(["defense", "thief fidelity", "benign loss (pt)",
                                  "L1 distortion"], rows)  # fmt: skip


STUDIES = [
    ("attacks", "Extraction attacks", attacks),
    ("watermark", "Watermarks", watermark),
    ("defenses", "Query-side defenses", defenses),
    ("matrix", "Evaluation matrix", matrix),
    ("proofs", "Verifiable inference", proofs),
    ("scrambling", "Weight scrambling", scrambling),
    ("enclave", "Enclave split execution", enclave),
    ("byom", "Auditing your own model", byom),
    ("ownership", "Ownership after extraction", ownership),
    ("entangled", "Entangled watermarks (EWE)", entangled),
    ("metering", "Metering what cannot be stopped", metering),
    ("adaptive", "Adaptive thieves against vtrust's detectors", adaptive),
    ("stealing", "Extraction warning (stealing progress)", stealing),
    ("stealers", "CloudLeak and the data-free thief", stealers),
    ("defenses-mnist", "Acting deployments on MNIST", defenses),
    ("stealers-mnist", "CloudLeak and the data-free thief on MNIST", stealers),
    ("adaptive-mnist", "Adaptive thieves on MNIST", adaptive),
    ("stealing-mnist", "Extraction warning on MNIST", stealing),
    ("metering-mnist", "Metering on MNIST", metering),
    ("poisoning-mnist", "Answer poisoning on MNIST: the probability thief", poisoning),
    ("int8", "Verifiable inference for int8 networks", int8),
    ("int8-mnist", "Int8 quantisation on MNIST (LeNet-5)", int8),
]
RENDERERS = {study.removesuffix(SUFFIX): render for study, _, render in STUDIES}


def figure_at(results: Any, path: str) -> Any:
    """The figure at a dotted ``path`` of a study's results (``None`` if absent); a key
    that itself holds dots (``reverse-sigmoid[beta=1.0,gamma=0.4]``) is matched whole,
    the longest key first."""
    node, rest = results, path
    while rest:
        if not isinstance(node, dict):
            return None
        key = next((k for k in sorted(node, key=len, reverse=True)
                    if rest == k or rest.startswith(f"{k}.")), None)  # fmt: skip
        if key is None:
            return None
        node, rest = node[key], rest[len(key) + 1 :]
    return node


def style(paper: dict[str, Any]) -> tuple[int, str]:
    """How a paper row's vtrust figure is printed: ``format = "p"`` for p-values."""
    return (2, "g") if paper.get("format") == "p" else (3, "f")


def papers(study: str, results: dict[str, Any]) -> str:
    """The table of published figures beside vtrust's, for one study ("" if none)."""
    entries = [p for p in tomllib.loads(PAPERS.read_text())["paper"]
               if p["study"].removesuffix(SUFFIX) == study.removesuffix(SUFFIX)]  # fmt: skip

    def figures(p: dict) -> list[Any]:
        return [figure_at(results, p["figure"].replace("*", row)) for row in p["rows"]]

    rows = [
        [
            p["name"],
            p["setting"],
            p["reported"],
            p["label"],
            "; ".join(
                f"{row} {_f(value, *style(p))}"
                for row, value in zip(p["rows"], figures(p), strict=True)
            ),
        ]
        for p in entries
        if any(value is not None for value in figures(p))
    ]  # a paper whose figures a partial run lacks (every one None) gets no row
    if not rows:
        return ""
    return "\n\nBeside the papers (docs/FINDINGS.md says what reproduced):\n\n" + markdown_table(
        ["paper", "paper's setting", "paper reports", "vtrust figure", "vtrust here"], rows
    )


def render_study(study: str, data: dict[str, Any]) -> str:
    """One study's tables from its results.json (a single run or several seeds)."""
    results = data.get("across_seeds", data)
    seeds = data.get("seeds")
    head = (f"*{len(seeds)} seeds ({', '.join(map(str, seeds))}): mean (min–max); one "
            "figure where every seed gave the same.*\n\n") if seeds else ""  # fmt: skip
    render = RENDERERS[study.removesuffix(SUFFIX)]
    return head + render(results, len(seeds or [0])) + papers(study, results)


def section(results: Path) -> str:
    parts = [BEGIN, "", "*Generated by `experiments/readme_results.py` from "
             "`results/<study>/results.json` (`make reproduce`).*", ""]  # fmt: skip
    times = _load(results, "reproduce") or {}
    for study, title, _ in STUDIES:
        data = _load(results, study)
        took = times.get("seconds", {}).get(study) or (data or {}).get("seconds")
        script, *arguments = study_command(study)
        command = " ".join([f"python experiments/{script}", *arguments])
        suffix = f" — `{command}`" + (
            f", {took / 60:.1f} min" if took else "")  # fmt: skip
        parts.append(f"### {title}{suffix}\n")
        parts.append(render_study(study, data) if data else "*(not run)*")
        parts.append("")
    parts.append(END)
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args()
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        text = text.rstrip() + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.readme.write_text(head + section(args.results) + tail)


if __name__ == "__main__":
    main()
