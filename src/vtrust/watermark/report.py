"""Tables and plots of a robustness evaluation."""

from __future__ import annotations

from typing import Any

from vtrust.report import Report, line_plot


def verdict(outcome: dict[str, Any]) -> str:
    """ "survives", or how the attack broke the promise: "REMOVED" or "FORGED"."""
    if outcome["watermark_survives"]:
        return "survives"
    return "FORGED" if outcome["category"] == "ambiguity" else "REMOVED"


def robustness_report(report: dict[str, Any]) -> Report:
    """Markdown table of verdicts and, per removal attack, score and accuracy vs strength."""
    out = Report("Watermark robustness")
    base = report["baseline"]
    out.add_text(
        f"Original accuracy {report['original_accuracy']:.4f}; baseline p-value "
        f"{base['p_value']:.3g} (owned: {base['owned']}). An attack removes the mark when it "
        f"is no longer verified at FPR {report['fpr']:g} while accuracy stays within "
        f"{report['max_accuracy_drop']:.0%} of the original."
    )
    out.add_table(
        "Verdicts",
        ["attack", "category", "watermark", "lowest score", "lowest accuracy"],
        [
            [
                o["attack"],
                o["category"],
                verdict(o),
                min((r["score"] for r in o["rows"]), default=float("nan")),
                min((r["accuracy"] for r in o["rows"]), default=float("nan")),
            ]
            for o in report["attacks"]
        ],
    )
    for o in report["attacks"]:
        rows = [r for r in o["rows"] if "strength" in r]
        if len(rows) < 2:
            continue
        xs = [r["strength"] for r in rows]
        out.add_figure(
            f"robustness-{o['attack']}.png",
            line_plot(
                {
                    "watermark score": (xs, [r["score"] for r in rows]),
                    "test accuracy": (xs, [r["accuracy"] for r in rows]),
                },
                title=o["attack"],
                xlabel="strength",
                ylabel="value",
            ),
            f"{o['attack']}: watermark score and accuracy vs strength",
        )
    return out
