"""Prediction poisoning: output transforms that return less information to every client.

Each transform maps a batch of probability rows to probability rows (so an oracle set to
return labels still takes the top-1 of the poisoned vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


register("defenses", "rounding", RoundingParams, "round probabilities to k decimals")(Rounding)
register("defenses", "top-k", TopKParams, "return only the top-k probabilities")(TopK)
