"""One ownership verdict over several kinds of evidence, calibrated on a null population.

Each evidence kind gives a p-value for "this suspect is independent of the owner's
model": the answer watermark's and the static mark's exact binomial tests, the trigger
set's Poisson-binomial test, dataset inference's Welch t-test. Keyed watermarks
(static, trigger) are compared after the grinding correction (``p · 2^64``: a claimant
may have tried that many secrets, :mod:`vtrust.watermark.verification`); the answer
watermark's log is the oracle's own record and is taken as given (a log is only as good
as its date — docs/SECURITY.md).

**Calibration.** A test can be invalid for models it was not designed around — dataset
inference is known to fire on independent models trained on the same distribution — so
each kind's p-values are measured on a population of independently trained models
(:mod:`vtrust.ownership.null_population`). The calibrated p-value is the larger of the
test's own and the tail of a normal fit to the population's −log₁₀ p (a population of
n models cannot show a rate below 1/n by itself; the fit extrapolates, and taking the
maximum never lets calibration make a test *more* confident than its own math).

**Combination: Bonferroni.** The kinds are computed on the same suspect and are not
independent under the null (a model that happens to resemble the owner's raises the
trigger and dataset-inference statistics together), so Fisher's method, which assumes
independence, could overstate the evidence. Bonferroni holds under any dependence:
with k kinds at false-positive rate α the verdict is *owned* iff some kind's calibrated
p-value ≤ α/k; the combined p-value is min(1, k · min p). It costs a factor k (≤ 4) in
p, which a real copy clears by many orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from vtrust.errors import InputError
from vtrust.watermark.verification import GRINDING_BITS

KINDS = ("dawn", "trigger", "static", "dataset-inference")
KEYED = frozenset({"trigger", "static"})  # grinding-corrected: the claimant picks the secret


@dataclass(frozen=True)
class Evidence:
    """One kind's test on one suspect. ``p_value``: the test's own; ``detail``: its counts."""

    kind: str
    p_value: float
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"evidence kind must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 <= self.p_value <= 1.0 or math.isnan(self.p_value):
            raise InputError(f"a p-value lies in [0, 1], got {self.p_value}")

    @property
    def adjusted_p_value(self) -> float:
        """The p-value the verdict starts from (× 2^64 for keyed watermarks)."""
        if self.kind in KEYED:
            return min(1.0, self.p_value * math.ldexp(1.0, GRINDING_BITS))
        return self.p_value


def minus_log10(p: float) -> float:
    """−log₁₀ p, with p = 0 read as the smallest positive double."""
    return -math.log10(max(p, 5e-324))


@dataclass(frozen=True)
class KindCalibration:
    """A kind's adjusted p-values on the null population, as −log₁₀ p."""

    kind: str
    null_scores: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.null_scores) < 2:
            raise InputError(f"calibrating {self.kind} needs at least 2 null models")

    @property
    def mean(self) -> float:
        return float(np.mean(self.null_scores))

    @property
    def std(self) -> float:
        return max(float(np.std(self.null_scores, ddof=1)), 1e-3)

    def calibrated(self, adjusted_p: float) -> float:
        """max(own p, the normal fit's tail P(score ≥ −log₁₀ p))."""
        tail = float(stats.norm.sf(minus_log10(adjusted_p), loc=self.mean, scale=self.std))
        return max(adjusted_p, tail)

    def threshold(self, alpha: float) -> float:
        """The largest adjusted p-value whose calibrated p-value is ≤ alpha."""
        fitted = self.mean + float(stats.norm.isf(alpha)) * self.std
        return min(alpha, 10.0 ** (-fitted))

    def false_positives(self, alpha: float) -> int:
        """Null models at or beyond the threshold."""
        limit = minus_log10(self.threshold(alpha))
        return int(sum(s >= limit for s in self.null_scores))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "null_scores": list(self.null_scores)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> KindCalibration:
        try:
            return cls(str(doc["kind"]), tuple(float(s) for s in doc["null_scores"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed calibration entry: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """The combined decision: per kind its own, adjusted and calibrated p-values and the
    threshold at α/k; the Bonferroni-combined p-value and the verdict."""

    owned: bool
    fpr: float
    combined_p_value: float
    rule: str
    kinds: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"owned": self.owned, "fpr": self.fpr, "combined_p_value": self.combined_p_value,
                "rule": self.rule, "evidence": list(self.kinds)}  # fmt: skip


def combine(
    evidence: Sequence[Evidence],
    fpr: float,
    calibration: Mapping[str, KindCalibration] | None = None,
) -> Verdict:
    """The Bonferroni verdict over ``evidence`` (one per kind) at false-positive rate
    ``fpr``; kinds without a calibration use their adjusted p-value as it is (reported
    ``calibrated: false``)."""
    if not evidence:
        raise InputError("no evidence to decide on")
    if not 0.0 < fpr < 1.0:
        raise InputError(f"fpr must be in (0, 1), got {fpr}")
    kinds = [e.kind for e in evidence]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"one piece of evidence per kind, got {kinds}")
    calibration = calibration or {}
    alpha = fpr / len(evidence)
    rows, best = [], 1.0
    for e in evidence:
        cal = calibration.get(e.kind)
        adjusted = e.adjusted_p_value
        p = cal.calibrated(adjusted) if cal else adjusted
        threshold = cal.threshold(alpha) if cal else alpha
        best = min(best, p)
        rows.append({"kind": e.kind, "p_value": e.p_value, "adjusted_p_value": adjusted,
                     "calibrated_p_value": p, "calibrated": cal is not None,
                     "threshold": threshold, "null_models": len(cal.null_scores) if cal else 0,
                     "passes": p <= alpha, **dict(e.detail)})  # fmt: skip
    combined = min(1.0, len(evidence) * best)
    return Verdict(combined <= fpr, fpr, combined, f"bonferroni over {len(evidence)}", tuple(rows))


def calibrate_kinds(null_evidence: Iterable[Sequence[Evidence]]) -> dict[str, KindCalibration]:
    """Per kind, the −log₁₀ adjusted p-values of every null model's evidence."""
    scores: dict[str, list[float]] = {}
    for model_evidence in null_evidence:
        for e in model_evidence:
            scores.setdefault(e.kind, []).append(minus_log10(e.adjusted_p_value))
    return {kind: KindCalibration(kind, tuple(s)) for kind, s in scores.items()}
