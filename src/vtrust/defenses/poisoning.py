"""Prediction poisoning: output transforms that return less information to every client.

Each transform maps a batch of probability rows to probability rows (so an oracle set to
return labels still takes the top-1 of the poisoned vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vtrust import keystream
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.oracle import QueryDefense


@dataclass(frozen=True)
class RoundingParams:
    decimals: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= 15:
            raise InputError(f"decimals must be in 0..15, got {self.decimals}")


class Rounding(QueryDefense):
    """Round every probability to ``decimals`` decimals (Tramèr et al.'s countermeasure).

    The top-1 class is kept: rounding never makes another class strictly larger."""

    name = "rounding"

    def __init__(self, params: RoundingParams = RoundingParams()) -> None:
        self.params = params

    def transform(self, client_id, x, probs):
        return np.round(probs, self.params.decimals)


@dataclass(frozen=True)
class TopKParams:
    k: int = 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InputError(f"k must be at least 1, got {self.k}")


class TopK(QueryDefense):
    """Keep the ``k`` largest probabilities, zero the rest and renormalise.

    With ``k = 1`` the answer is a one-hot vector: the label-only setting."""

    name = "top-k"

    def __init__(self, params: TopKParams = TopKParams()) -> None:
        self.params = params

    def transform(self, client_id, x, probs):
        k = min(self.params.k, probs.shape[1])
        keep = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = np.zeros_like(probs)
        rows = np.arange(len(probs))[:, None]
        out[rows, keep] = probs[rows, keep]
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1.0 / k), where=total > 0)


def top1_limit(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per row, the largest step λ ∈ [0, 1] such that ``y + λ (z − y)`` keeps ``y``'s
    top-1 class strictly on top (ties broken by the smallest class index, as argmax)."""
    top = y.argmax(axis=1)
    rows = np.arange(len(y))
    gap_y = y[rows, top][:, None] - y  # ≥ 0
    gap_z = z - z[rows, top][:, None]  # how much z favours class j over the top class
    closing = gap_y + gap_z  # the gap to class j shrinks at this rate per unit λ
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.where(closing > 0, gap_y / closing, np.inf)
    limits[rows, top] = np.inf
    return np.clip(limits.min(axis=1) * (1 - 1e-6), 0.0, 1.0)


def mix_toward(y: np.ndarray, z: np.ndarray, budget: float, keep_top1: bool) -> np.ndarray:
    """Move each row of ``y`` toward the matching row of ``z`` (both on the simplex) by
    as much as an L1 distortion ``budget`` allows, optionally without changing the
    top-1 class. The result stays on the simplex (a convex combination)."""
    dist = np.abs(z - y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(dist > 0, np.minimum(1.0, budget / dist), 0.0)
    if keep_top1:
        lam = np.minimum(lam, top1_limit(y, z))
    out = y + lam[:, None] * (z - y)
    if keep_top1:  # a near-tie (within rounding) can still flip: such rows stay as they were
        flipped = out.argmax(axis=1) != y.argmax(axis=1)
        out[flipped] = y[flipped]
    return out


@dataclass(frozen=True)
class ReverseSigmoidParams:
    """β scales the perturbation, γ flattens the sigmoid (the paper's and ART's
    parameterisation; ART's γ = 0.4 with β = 1.0 is where it bites: below β ≈ 0.6 the
    answers still teach a probability-trained thief everything)."""

    beta: float = 1.0
    gamma: float = 0.4

    def __post_init__(self) -> None:
        if self.beta < 0 or self.gamma <= 0:
            raise InputError(f"need beta ≥ 0 and gamma > 0, got {self.beta}, {self.gamma}")


class ReverseSigmoid(QueryDefense):
    """Reverse sigmoid (Lee et al. 2019): ``y − β (σ(γ σ⁻¹(y)) − ½)``, clipped at 0 and
    renormalised (as ART's ``ReverseSigmoid``). Small probabilities are lifted toward
    β/2 and the order of the non-top classes reversed, which misleads a thief training on
    the returned probabilities; ``β`` near 2 changes the top-1 class (β = 2, γ = 0.4:
    benign accuracy 0 on MNIST)."""

    name = "reverse-sigmoid"

    def __init__(self, params: ReverseSigmoidParams = ReverseSigmoidParams()) -> None:
        self.params = params

    def transform(self, client_id, x, probs):
        y = np.clip(probs, 1e-12, 1 - 1e-12)
        logit = np.log(y) - np.log1p(-y)
        bumped = 1.0 / (1.0 + np.exp(-self.params.gamma * logit))
        out = np.maximum(probs - self.params.beta * (bumped - 0.5), 0.0)
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), probs)


@dataclass(frozen=True)
class RandomNoiseParams:
    epsilon: float = 0.5
    keep_top1: bool = True
    seed: int | None = None  # reproducible (and predictable) noise: experiments only

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 2:
            raise InputError(f"epsilon (an L1 distance) must be in [0, 2], got {self.epsilon}")


def hash_seeds(seeds: list[int]) -> int:
    """One seed from several (the entry's and the deployment's), order-sensitive."""
    out = 0
    for seed in seeds:
        out = (out * 1_000_003 + int(seed)) % (1 << 62)
    return out


class RandomNoise(QueryDefense):
    """The random baseline of the MAD paper: move each answer toward a uniformly random
    point of the simplex by L1 distance ``epsilon`` (optionally keeping the top-1 class).
    The noise is the defense's secret — a thief who could predict it would subtract it —
    so it comes from a ChaCha20 stream keyed from :mod:`secrets`, unless the entry's
    ``seed`` or the deployment's seed asks for a reproducible (insecure) run."""

    name = "random-noise"

    def __init__(self, params: RandomNoiseParams = RandomNoiseParams()) -> None:
        self.params = params
        self.stream = keystream.for_run(params.seed)

    def bind(self, context) -> None:
        seeds = [s for s in (self.params.seed, context.seed) if s is not None]
        self.stream = keystream.for_run(None if not seeds else hash_seeds(seeds))

    @property
    def insecure(self) -> bool:
        return not self.stream.secure

    def transform(self, client_id, x, probs):
        z = self.stream.simplex(len(probs), probs.shape[1])
        return mix_toward(probs, z, self.params.epsilon, self.params.keep_top1)


register("defenses", "rounding", RoundingParams, "round probabilities to k decimals")(Rounding)
register("defenses", "top-k", TopKParams, "return only the top-k probabilities")(TopK)
register("defenses", "reverse-sigmoid", ReverseSigmoidParams, "reverse-sigmoid perturbation")(
    ReverseSigmoid
)
register("defenses", "random-noise", RandomNoiseParams, "random simplex noise (L1 budget)")(
    RandomNoise
)
