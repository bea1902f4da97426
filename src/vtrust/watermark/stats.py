"""The statistics behind ownership decisions: exact binomial and Poisson-binomial tails,
and a null distribution calibrated from independently trained models."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vtrust.errors import InputError


def binomial_tail(successes: int, trials: int, p: float = 0.5) -> float:
    """P(X ≥ successes) for X ~ Binomial(trials, p): the one-sided exact test."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise InputError(f"bad binomial counts {successes}/{trials}")
    return float(stats.binom.sf(successes - 1, trials, p))


def poisson_binomial_tail(successes: int, probabilities: np.ndarray) -> float:
    """P(X ≥ successes) for X a sum of independent Bernoulli(probabilities[i]) (exact DP)."""
    probs = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for p in probs:
        dist[1:] = dist[1:] * (1 - p) + dist[:-1] * p
        dist[0] *= 1 - p
    return float(min(1.0, dist[successes:].sum()))


@dataclass(frozen=True)
class NullCalibration:
    """The watermark score (bits matched or trigger hits, as a fraction) of independently
    trained models: the empirical null. A normal fit gives the threshold at a
    false-positive rate far below 1/n, which n models alone cannot show."""

    scores: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.scores) < 2:
            raise InputError("a null calibration needs at least 2 models")

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1))

    def threshold(self, fpr: float) -> float:
        """Score above which a null model falls with probability ``fpr`` (normal fit)."""
        return self.mean + float(stats.norm.isf(fpr)) * max(self.std, 1e-12)

    def p_value(self, score: float) -> float:
        """Normal-fit tail probability of ``score`` under the null."""
        return float(stats.norm.sf(score, loc=self.mean, scale=max(self.std, 1e-12)))

    def empirical_p_value(self, score: float) -> float:
        """(1 + #null ≥ score) / (n + 1): exact but bounded below by 1/(n + 1)."""
        return (1 + sum(s >= score for s in self.scores)) / (len(self.scores) + 1)

    def to_json(self) -> dict:
        return {"scores": list(self.scores), "mean": self.mean, "std": self.std}


def log10(p: float) -> float:
    return math.log10(p) if p > 0 else float("-inf")
