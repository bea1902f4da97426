"""The matrix as Markdown tables and heatmaps (means over seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vtrust.report import Report, heatmap


def summarise(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per (defense, attack): mean fidelity, thief accuracy, queries, flag rate and
    refusal rate (the share of seeds in which the deployment stopped answering)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in result["cells"]:
        groups.setdefault((record["defense"], record["attack"]), []).append(record["result"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (defense, attack), rows in groups.items():
        out.setdefault(defense, {})[attack] = {
            "fidelity": float(np.mean([r["fidelity"] for r in rows])),
            "thief_accuracy": float(np.mean([r["thief_accuracy"] for r in rows])),
            "queries": float(np.mean([r["queries"] for r in rows])),
            "flag_rate": float(np.mean([r["flagged"] for r in rows])),
            "refusal_rate": float(np.mean([refused(r) for r in rows])),
            "seeds": len(rows),
        }
    return out


def refused(cell_result: dict[str, Any]) -> bool:
    """Whether the deployment stopped answering the attacker in this cell."""
    return str(cell_result.get("stopped") or "").startswith("refused")


def write_report(result: dict[str, Any], out: str | Path) -> Path:
    spec = result["spec"]
    summary = summarise(result)
    defenses, attacks = list(spec["defenses"]), list(spec["attacks"])
    report = Report(f"Evaluation matrix — {Path(spec['target']).name}")
    one_seed = spec["seeds"] == 1
    flagged = ("whether the defense flagged the attacker (1 yes, 0 no)" if one_seed else
               "the share of seeds in which the defense flagged the attacker")  # fmt: skip
    report.add_text(
        f"{len(defenses)} defenses × {len(attacks)} attacks × {spec['seeds']} "
        f"seed{'' if one_seed else 's'} at {spec['budget']} queries"
        f"{'' if one_seed else '; means over seeds'}. Thief fidelity is agreement with the "
        f"victim on the test split; 'flagged' is {flagged}."
    )
    rows = []
    for d in defenses:
        for a in attacks:
            s = summary[d][a]
            rows.append([d, a, f"{s['fidelity']:.3f}", f"{s['thief_accuracy']:.3f}",
                         f"{s['queries']:.0f}", f"{s['flag_rate']:.2f}",
                         f"{s['refusal_rate']:.2f}"])  # fmt: skip
    refusal = ("whether the deployment stopped answering" if one_seed else
               "share of seeds in which the deployment stopped answering")  # fmt: skip
    report.add_table(f"Cells (queries: answered; refused: {refusal})",
                     ["defense", "attack", "fidelity", "thief accuracy", "queries", "flagged",
                      "refused"], rows)  # fmt: skip
    report.add_figure(
        "fidelity.png",
        heatmap([[summary[d][a]["fidelity"] for a in attacks] for d in defenses],
                rows=defenses, columns=attacks, title="Thief fidelity", label="fidelity"),
        "Thief fidelity per defense (rows) and attack (columns).",
    )  # fmt: skip
    report.add_figure(
        "flagged.png",
        heatmap([[summary[d][a]["flag_rate"] for a in attacks] for d in defenses],
                rows=defenses, columns=attacks, title="Attacker flagged",
                label="flagged (1 yes, 0 no)" if one_seed else "share of seeds flagged"),
        flagged[0].upper() + flagged[1:] + ".",
    )  # fmt: skip
    data = {**result, "summary": summary}
    report.write(out, data, json_name="matrix.json")
    return Path(out) / "report.md"
