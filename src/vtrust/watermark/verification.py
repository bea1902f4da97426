"""The result of an ownership test, and the threshold that holds against grinding.

A key's message and triggers are derived from its secret, so a claimant who does not own
a model can only try secret after secret until one happens to fit it. Each try is a
fresh test with the same null distribution, so with ``2^G`` tries the chance that *some*
secret reaches single-key p-value ``p`` is at most ``2^G · p`` (union bound). The decision
therefore asks for ``2^G · p ≤ fpr``: :data:`GRINDING_BITS` = 64 by default — far beyond
what deriving a projection or querying a trigger set 2^64 times costs. (With 2^40 tries
some secret matches ≈ 70 % of 256 bits by chance; at G = 64 a 256-bit static key needs
≈ 212 matching bits, BER ≤ 17 %, at fpr 10^-6.) A notarised commitment older than the
suspect (:mod:`vtrust.watermark.notary`) rules grinding out, but the bound is kept: it
costs a marked model nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from vtrust.watermark.stats import NullCalibration

GRINDING_BITS = 64


@dataclass(frozen=True)
class Verification:
    """An ownership decision with its evidence.

    ``owned`` requires the exact test's ``p_value`` times ``2^grinding_bits`` (the
    ``adjusted_p_value``) ≤ ``fpr``, when the key carries a null calibration the score
    above the calibrated threshold at the same ``fpr``, and — when a dating policy was
    applied — a valid notary receipt older than the suspect (``dated``).
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
    grinding_bits: int = GRINDING_BITS
    dated: bool | None = None
    insecure_key: bool = False

    @property
    def adjusted_p_value(self) -> float:
        """``p_value · 2^grinding_bits`` capped at 1: what the decision compares to fpr."""
        return min(1.0, self.p_value * math.ldexp(1.0, self.grinding_bits))

    def undated(self, reason: str) -> Verification:
        """This decision overruled: the key's commitment is not provably older."""
        return replace(self, owned=False, dated=False, reason=reason)

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
        grinding_bits: int = GRINDING_BITS,
    ) -> Verification:
        if grinding_bits < 0:
            raise ValueError("grinding_bits must be non-negative")
        score = matches / total if total else 0.0
        owned = min(1.0, p_value * math.ldexp(1.0, grinding_bits)) <= fpr
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
        extra["grinding_bits"] = grinding_bits
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
            "adjusted_p_value": self.adjusted_p_value,
            "grinding_bits": self.grinding_bits,
            "dated": self.dated,
            "insecure_key": self.insecure_key,
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
