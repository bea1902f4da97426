"""Equation-solving extraction (Tramèr et al., USENIX Security 2016) of softmax regression.

For multinomial logistic regression, ``log p_k(x) = w_k·x + b_k - log Z(x)``, so the
centred log-probabilities ``log p(x) - mean_k log p_k(x)`` are *linear* in ``x`` with the
class-centred parameters ``W - mean_k w_k`` (softmax cannot tell parameters apart that
differ by a vector common to all classes). Each query gives one linear equation per
class; ``d + 1`` well-chosen queries determine every parameter.

The default query design is the origin plus the ``d`` unit vectors, which makes the
system perfectly conditioned; ``design = "uniform"`` uses random inputs and least squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vtrust.attacks.base import AttackerResources, finish
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import build_model

_FLOOR = 1e-300  # log of a zero probability (rounded or label-only answers)


@dataclass(frozen=True)
class EquationSolvingParams(ExtractionParams):
    """``oversample`` × (d + 1) queries; ``design``: unit vectors or uniform random."""

    budget: int = 100_000
    design: Literal["basis", "uniform"] = "basis"
    oversample: float = 1.0
    thief_arch: str = "softmax"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oversample < 1:
            raise InputError(f"oversample must be at least 1, got {self.oversample}")


def centred_parameters(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(K, d + 1) parameters with the class mean removed (the identifiable part)."""
    theta = np.concatenate([weight, bias[:, None]], axis=1).astype(np.float64)
    return theta - theta.mean(axis=0, keepdims=True)


def solve_softmax_parameters(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Least-squares solution of ``[x, 1] θᵀ = centred log probs``: (K, d + 1) centred θ."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    design = np.concatenate([flat, np.ones((len(flat), 1))], axis=1)
    logp = np.log(np.maximum(probs.astype(np.float64), _FLOOR))
    target = logp - logp.mean(axis=1, keepdims=True)
    theta, *_ = np.linalg.lstsq(design, target, rcond=None)
    return theta.T


class EquationSolving(ExtractionAttack):
    kind = "equation-solving"

    def __init__(self, params: EquationSolvingParams = EquationSolvingParams()) -> None:
        super().__init__(params)

    def _queries(self, d: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        n = int(np.ceil(self.params.oversample * (d + 1)))
        if self.params.design == "basis":
            base = np.concatenate([np.zeros((1, d)), np.eye(d)])
            extra = rng.uniform(0, 1, size=(max(0, n - d - 1), d))
            flat = np.concatenate([base, extra])
        else:
            flat = rng.uniform(0, 1, size=(n, d))
        return flat.reshape(len(flat), *shape).astype(np.float32)

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        session, timer, rng = self.start(resources, budget, seed)
        shape = resources.input_shape
        d = int(np.prod(shape))
        with timer.stage("query"):
            session.ask(self._queries(d, shape, rng))
        x, y = session.transfer_x, session.transfer_y
        details = {"equations": len(x), "unknowns_per_class": d + 1}
        thief = None
        if len(x) > 0:
            with timer.stage("solve"):
                thief = self.thief_from(x, y, shape, resources.n_classes, seed=seed)
            design = np.concatenate([x.reshape(len(x), -1), np.ones((len(x), 1))], axis=1)
            details["rank"] = int(np.linalg.matrix_rank(design))
            details["determined"] = details["rank"] == d + 1
        return finish(self.kind, session, timer, None, seed=seed, thief=thief, details=details)

    def thief_from(self, x, y, input_shape, n_classes, *, seed):
        """A softmax-regression model holding the solved (class-centred) parameters."""
        theta = solve_softmax_parameters(x, y)
        thief = build_model("softmax", input_shape, n_classes, seed=seed)
        with torch.no_grad():
            thief.head.weight.copy_(torch.from_numpy(theta[:, :-1]))
            thief.head.bias.copy_(torch.from_numpy(theta[:, -1]))
        return thief


register(
    "attacks",
    "equation-solving",
    EquationSolvingParams,
    "Tramèr et al.: solve for softmax-regression parameters",
)(EquationSolving)
