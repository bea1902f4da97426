"""The result of an ownership test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtrust.watermark.stats import NullCalibration


@dataclass(frozen=True)
class Verification:
    """An ownership decision with its evidence.

    ``owned`` requires the exact test's ``p_value`` ≤ ``fpr`` and, when the key carries a
    null calibration, the score above the calibrated threshold at the same ``fpr``.
    ``score`` is the fraction of bits matched (static) or of triggers hit (dynamic).
    """

    kind: str
    owned: bool
    p_value: float
    fpr: float
    score: float
    matches: int
    total: int
    reason: str = ""
    calibrated_threshold: float | None = None
    calibrated_p_value: float | None = None
    empirical_p_value: float | None = None
    null_models: int = 0

    @classmethod
    def decide(
        cls,
        kind: str,
        *,
        matches: int,
        total: int,
        p_value: float,
        fpr: float,
        calibration: NullCalibration | None,
    ) -> Verification:
        score = matches / total if total else 0.0
        owned = p_value <= fpr
        extra: dict[str, Any] = {}
        if calibration is not None:
            threshold = calibration.threshold(fpr)
            owned = owned and score >= threshold
            extra = {
                "calibrated_threshold": threshold,
                "calibrated_p_value": calibration.p_value(score),
                "empirical_p_value": calibration.empirical_p_value(score),
                "null_models": len(calibration.scores),
            }
        return cls(kind, owned, p_value, fpr, score, matches, total, **extra)

    @classmethod
    def mismatch(cls, kind: str, fpr: float, reason: str) -> Verification:
        """'Not owned' because the key does not even fit the model (wrong key or model)."""
        return cls(kind, False, 1.0, fpr, 0.0, 0, 0, reason=reason)

    def to_json(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "owned": self.owned,
            "p_value": self.p_value,
            "fpr": self.fpr,
            "matches": self.matches,
            "total": self.total,
            "reason": self.reason,
            "calibrated_threshold": self.calibrated_threshold,
            "calibrated_p_value": self.calibrated_p_value,
            "empirical_p_value": self.empirical_p_value,
            "null_models": self.null_models,
        }
        if self.kind == "static":
            out["ber"] = 1.0 - self.score if self.total else 1.0
        else:
            out["trigger_accuracy"] = self.score
        return out
