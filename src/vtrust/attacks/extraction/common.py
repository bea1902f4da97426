"""Parameters and helpers shared by the extraction attacks."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from torch import nn

from vtrust import quick
from vtrust.attacks.base import (
    AttackerResources,
    ExtractionResult,
    IdTactics,
    QuerySession,
    StageTimer,
    ThiefTraining,
    train_thief,
)
from vtrust.data import natural_image_pool
from vtrust.errors import InputError
from vtrust.models import ARCHITECTURES

Source = Literal["uniform", "gaussian", "natural", "attacker"]


@dataclass(frozen=True)
class ExtractionParams:
    """Settings every extraction attack has.

    Attributes:
        budget: queries the attack may spend (``--budget`` overrides it).
        labels_only: train on the top-1 label even when probabilities are returned.
        thief_arch: architecture of the stolen copy.
        thief_steps: optimizer steps of the thief's final training.
        clean_labels: retrain the thief without the answers its first copy disagrees
            with (an adaptive thief against answer watermarks).
        rotate_every, on_refusal: how the attacker uses client ids
            (:class:`~vtrust.attacks.base.IdTactics`: sybil rotation every k queries,
            a fresh id after a refusal).
    """

    budget: int = 1000
    labels_only: bool = False
    thief_arch: str = "cnn"
    thief_steps: int = 1500
    clean_labels: bool = False
    rotate_every: int = 0
    on_refusal: Literal["stop", "new-id"] = "stop"

    def __post_init__(self) -> None:
        IdTactics(self.rotate_every, self.on_refusal)  # validates both
        if self.budget < 1:
            raise InputError(f"budget must be positive, got {self.budget}")
        if self.thief_arch not in ARCHITECTURES:
            raise InputError(f"thief_arch must be one of {sorted(ARCHITECTURES)}")
        if self.thief_steps < 1:
            raise InputError(f"thief_steps must be positive, got {self.thief_steps}")

    @property
    def tactics(self) -> IdTactics:
        return IdTactics(self.rotate_every, self.on_refusal)

    @property
    def training(self) -> ThiefTraining:
        return ThiefTraining(
            arch=self.thief_arch, steps=self.thief_steps, clean_labels=self.clean_labels
        )


@dataclass(frozen=True)
class PoolParams(ExtractionParams):
    """Settings of attacks that select their queries from a pool of candidates.

    ``source``: natural-image patches (``pool_size`` of them are cut) or the attacker's
    own in-distribution samples (all of them).
    """

    source: Literal["natural", "attacker"] = "natural"
    pool_size: int = 6000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pool_size < 1:
            raise InputError(f"pool_size must be positive, got {self.pool_size}")


class ExtractionAttack(abc.ABC):
    """A black-box attack: ``run`` spends at most ``budget`` queries of the oracle."""

    kind: ClassVar[str]

    def __init__(self, params: ExtractionParams) -> None:
        self.params = params

    @abc.abstractmethod
    def run(
        self, resources: AttackerResources, *, budget: int | None = None, seed: int = 0
    ) -> ExtractionResult:
        """Attack ``resources.oracle``; ``budget`` overrides ``params.budget``."""

    def start(
        self, resources: AttackerResources, budget: int | None, seed: int
    ) -> tuple[QuerySession, StageTimer, np.random.Generator]:
        """What every run begins with: a query session over the budget (``budget``
        overrides ``params.budget``), a stage timer and the seeded generator."""
        spend = quick.queries(budget or self.params.budget)  # capped by VTRUST_QUICK only
        session = QuerySession(resources, spend, labels_only=self.params.labels_only,
                               tactics=self.params.tactics)  # fmt: skip
        return session, StageTimer(), np.random.default_rng(seed)

    def thief_from(
        self,
        x: np.ndarray,
        y: np.ndarray,
        input_shape: tuple[int, int, int],
        n_classes: int,
        *,
        seed: int,
    ) -> nn.Module:
        """The thief this attack builds from a transfer set (used for budget curves)."""
        return train_thief(x, y, input_shape, n_classes, self.params.training, seed=seed)


def draw_inputs(
    source: Source, n: int, resources: AttackerResources, rng: np.random.Generator
) -> np.ndarray:
    """``n`` candidate queries from ``source``, in the victim's input shape, in [0, 1].

    ``uniform``/``gaussian`` are Tramèr et al.'s random queries; ``natural`` the
    problem-domain-free image pool; ``attacker`` the attacker's own in-distribution
    samples (without replacement while they last).
    """
    shape = resources.input_shape
    if source == "uniform":
        return rng.uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)
    if source == "gaussian":
        return np.clip(rng.normal(0.5, 0.25, size=(n, *shape)), 0.0, 1.0).astype(np.float32)
    if source == "natural":
        return natural_image_pool(n, shape, seed=int(rng.integers(2**31)))
    if resources.data is None or len(resources.data) == 0:
        raise InputError("this attack draws from the attacker's data, but it holds none")
    pool = resources.data.x
    order = rng.permutation(len(pool))
    if n > len(pool):  # more queries than samples: go round again in a new order
        extra = rng.integers(0, len(pool), size=n - len(pool))
        order = np.concatenate([order, extra])
    return pool[order[:n]].astype(np.float32)


def draw_pool(params: PoolParams, resources: AttackerResources, rng: np.random.Generator):
    """The candidate pool a pool-based attack selects its queries from."""
    if params.source == "natural":
        return draw_inputs("natural", params.pool_size, resources, rng)
    size = len(resources.data) if resources.data is not None else 0
    return draw_inputs("attacker", size, resources, rng)
