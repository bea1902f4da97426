"""Regenerate the README's results section from the studies' ``results.json`` files.

    python experiments/readme_results.py [--results DIR] [--readme README.md]

Everything between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is replaced
by tables built from ``results/<study>/results.json`` (studies without results are
listed as not run). No figure in that section is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vtrust.report import markdown_table

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _load(results: Path, study: str) -> dict[str, Any] | None:
    path = results / study / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def attacks(r: dict) -> str:
    rows = []
    for name, a in sorted(r["attacks"].items()):
        if a["category"] in ("extraction", "direct"):
            rows.append([name, a["category"], a.get("queries", 0), _f(a["thief_accuracy"]),
                         _f(a["fidelity"])])  # fmt: skip
    return markdown_table(["attack", "kind", "queries", "thief accuracy", "fidelity"], rows)


def watermark(r: dict) -> str:
    rows = []
    for kind in ("static", "dynamic"):
        w = r[kind]
        survived = [a["attack"] for a in w["robustness"]["attacks"] if a["watermark_survives"]]
        removed = [a["attack"] for a in w["robustness"]["attacks"] if not a["watermark_survives"]]
        rows.append([kind, _f(w["accuracy_plain"], 4), _f(w["accuracy_marked"], 4),
                     w.get("null_false_positives", "—"), len(survived),
                     ", ".join(removed) or "none"])  # fmt: skip
    return markdown_table(["mark", "accuracy plain", "marked", "false positives on null models",
                           "attacks survived", "removed by"], rows)  # fmt: skip


def defenses(r: dict) -> str:
    fp = r["false_positives"]
    text = "Benign clients flagged: " + ", ".join(
        f"{name} {v['flagged']}/{v['clients']}" for name, v in fp.items()) + ".\n\n"  # fmt: skip
    rows = [[d["attack"], d["detector"], f"{d['detected']}/{d['clients']}",
             _f(d["median_queries"], 0)] for d in r["detection"]]  # fmt: skip
    return text + markdown_table(["attack", "detector", "clients flagged", "median queries"], rows)


def proofs(r: dict) -> str:
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


def scrambling(r: dict) -> str:
    rows = []
    for arch, m in r["models"].items():
        s = m["scrambled_accuracy"]
        best = max(m["thief"]["1.0"], key=lambda t: t["fraction"])
        rows.append([arch, _f(m["accuracy"], 4), _f(s["mean"], 4), _f(s["max"], 4),
                     f"{100 * s['share_within_chance_plus_2pt']:.0f} %",
                     m["unscrambling_bit_exact"], _f(best["finetuned_accuracy"]),
                     _f(best["scratch_accuracy"])])  # fmt: skip
    headers = ["model", "accuracy", "scrambled mean", "max", "keys ≤ chance+2", "bit-exact",
               "thief fine-tunes (10 %)", "scratch (10 %)"]  # fmt: skip
    return markdown_table(headers, rows)


def enclave(r: dict) -> str:
    s, t = r["slalom"], r["tampering"]
    fv = {row["n"]: row for row in r["freivalds"]}
    exact = s["identical_to_plain_quantised"]
    text = (f"Slalom: identical to the plain quantised network: {exact};"
            f" accuracy {_f(s['accuracy'], 4)} (float {_f(s['float_accuracy'], 4)}); tampering "
            f"detected {t['detected']}/{t['trials']}. Freivalds / recompute at n = 512: "
            f"{_f(fv[512]['ratio'])} (goal ≤ 0.05).\n\n")  # fmt: skip
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
        [[row["split"], _f(max(row["finetuned_accuracy"], row["scratch_accuracy"]))]
         for row in steal],
    )  # fmt: skip


def matrix(r: dict) -> str:
    summary, spec = r["summary"], r["spec"]
    rows = [[d, *(_f(summary[d][a]["fidelity"]) + ("*" if summary[d][a]["flag_rate"] else "")
                  for a in spec["attacks"])] for d in spec["defenses"]]  # fmt: skip
    return (
        f"Thief fidelity against the MLP victim at {spec['budget']} queries (* = flagged):\n\n"
    ) + markdown_table(["defense", *spec["attacks"]], rows)


def byom(r: dict) -> str:
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


STUDIES = [
    ("attacks", "Extraction attacks", attacks),
    ("watermark", "Watermarks", watermark),
    ("defenses", "Query-side defenses", defenses),
    ("matrix", "Evaluation matrix", matrix),
    ("proofs", "Verifiable inference", proofs),
    ("scrambling", "Weight scrambling", scrambling),
    ("enclave", "Enclave split execution", enclave),
    ("byom", "Auditing your own model", byom),
]


def section(results: Path) -> str:
    parts = [BEGIN, "", "*Generated by `experiments/readme_results.py` from "
             "`results/<study>/results.json` (`make reproduce`).*", ""]  # fmt: skip
    times = _load(results, "reproduce") or {}
    for study, title, render in STUDIES:
        data = _load(results, study)
        took = times.get("seconds", {}).get(study)
        suffix = f" — `python experiments/{study}.py`" + (
            f", {took / 60:.1f} min" if took else "")  # fmt: skip
        parts.append(f"### {title}{suffix}\n")
        parts.append(render(data) if data else "*(not run)*")
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
