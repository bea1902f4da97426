"""What every extraction attack shares: the attacker's resources, a query session that
spends a budget through the oracle and stops cleanly on refusal, thief training, results.

A black-box attack sees only :meth:`vtrust.oracle.Oracle.query` (through a
:class:`QuerySession`) and the data the attacker holds; never the victim's weights or
training data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vtrust.data import Dataset
from vtrust.errors import InputError, QueryRefused
from vtrust.models import TrainConfig, build_model, fit_arrays
from vtrust.oracle import Oracle, OutputMode


@dataclass(frozen=True)
class ThiefTraining:
    """How the attacker trains its copy: architecture and a step budget.

    ``steps`` optimizer steps are spread over however many epochs the transfer set needs
    (at least ``min_epochs``), so small and large transfer sets are trained comparably;
    a set smaller than one batch gets one step per epoch, so ``steps`` epochs (a thief
    refused after a few queries trains ``steps`` steps, not ``batch_size / n`` times
    as many).
    ``clean_labels``: an adaptive thief against answer watermarks — drop the transfer
    samples whose answer a copy trained on the other half disputes (where planted wrong
    answers hide), then train on the rest.
    """

    arch: str = "cnn"
    steps: int = 1500
    min_epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-3
    clean_labels: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.min_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise InputError(f"invalid thief training settings {self}")

    def config(self, n_samples: int, seed: int) -> TrainConfig:
        spread = math.ceil(self.steps * self.batch_size / max(n_samples, 1))
        epochs = max(self.min_epochs, min(spread, self.steps))
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
        )


def train_thief(
    x: np.ndarray,
    targets: np.ndarray,
    input_shape: tuple[int, int, int],
    n_classes: int,
    training: ThiefTraining,
    *,
    seed: int,
    desc: str = "thief",
) -> nn.Module:
    """A fresh ``training.arch`` model trained on ``(x, targets)`` (labels or
    probabilities); with ``training.clean_labels``, on the samples no copy trained on
    the other half disputes (:func:`disputed_answers`)."""
    keep = disputed_answers(x, targets, input_shape, n_classes, training, seed=seed) == 0
    if training.clean_labels and keep.any():
        x, targets = x[keep], targets[keep]
    model = build_model(training.arch, input_shape, n_classes, seed=seed)
    fit_arrays(model, x, targets, training.config(len(x), seed), desc=desc)
    return model


def disputed_answers(
    x: np.ndarray,
    targets: np.ndarray,
    input_shape: tuple[int, int, int],
    n_classes: int,
    training: ThiefTraining,
    *,
    seed: int,
) -> np.ndarray:
    """1 for each transfer sample whose answer a copy trained on the *other* half of the
    transfer set disagrees with (two folds), else 0 — all zeros unless
    ``training.clean_labels``. A copy that never saw a planted wrong answer predicts the
    model's own label there, so the planted answers are disputed while ordinary ones
    mostly are not."""
    disputed = np.zeros(len(x), dtype=np.int64)
    if not training.clean_labels or len(x) < 4:
        return disputed
    order = np.random.default_rng(seed).permutation(len(x))
    folds = (order[: len(x) // 2], order[len(x) // 2 :])
    answered = targets if targets.ndim == 1 else targets.argmax(axis=1)
    for train_on, judge in (folds, folds[::-1]):
        copy = build_model(training.arch, input_shape, n_classes, seed=seed)
        fit_arrays(copy, x[train_on], targets[train_on], training.config(len(train_on), seed),
                   desc="thief (cleaning fold)")  # fmt: skip
        copy.eval()
        with torch.no_grad():
            own = copy(torch.from_numpy(np.ascontiguousarray(x[judge]))).argmax(1).numpy()
        disputed[judge] = own != answered[judge]
    return disputed


@dataclass
class AttackerResources:
    """What the attacker holds besides oracle access.

    Attributes:
        oracle: the deployment under attack (only ``query`` is used).
        client_id: the identity the attacker queries under.
        data: in-distribution samples the attacker holds (its labels are never used by a
            black-box attack: labels come from the oracle).
        input_shape, n_classes: public facts about the deployed model's interface.
    """

    oracle: Oracle
    data: Dataset | None = None
    client_id: str = "attacker"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.oracle.input_shape

    @property
    def n_classes(self) -> int:
        return self.oracle.n_classes


class QuerySession:
    """One attack's access to the oracle: spends at most ``budget`` queries, records the
    transfer set in query order, and turns a refusal into a clean stop.

    Answers are normalised to probability rows: a label-only oracle (or ``labels_only``)
    gives one-hot rows.
    """

    def __init__(self, resources: AttackerResources, budget: int, *, labels_only: bool) -> None:
        if budget < 0:
            raise InputError(f"query budget must be non-negative, got {budget}")
        self.resources = resources
        self.budget = budget
        self.labels_only = labels_only
        self.used = 0
        self.stopped: str | None = None
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []

    @property
    def remaining(self) -> int:
        return 0 if self.stopped else self.budget - self.used

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    def _rows(self, answers: np.ndarray) -> np.ndarray:
        k = self.resources.n_classes
        if self.resources.oracle.output is OutputMode.LABELS:
            return np.eye(k, dtype=np.float32)[answers]
        probs = np.asarray(answers, dtype=np.float32)
        if self.labels_only:
            return np.eye(k, dtype=np.float32)[probs.argmax(1)]
        return probs

    def ask(self, x: np.ndarray) -> np.ndarray:
        """Query as many rows of ``x`` as the budget allows; return their answers.

        Fewer rows than asked come back when the budget runs out or the oracle refuses
        (then :attr:`stopped` says why and every later call returns nothing).
        """
        x = np.asarray(x, dtype=np.float32)[: self.remaining]
        if len(x) == 0:
            if self.stopped is None and self.used >= self.budget:
                self.stopped = "budget"
            return np.zeros((0, self.resources.n_classes), dtype=np.float32)
        try:
            answers = self.resources.oracle.query(x, client_id=self.resources.client_id)
        except QueryRefused as refusal:
            answers = refusal.answered if refusal.answered is not None else x[:0]
            self.stopped = f"refused by {refusal.defense} after {refusal.queries} queries"
        rows = self._rows(answers)
        self._x.append(x[: len(rows)])
        self._y.append(rows)
        self.used += len(rows)
        return rows

    @property
    def transfer_x(self) -> np.ndarray:
        shape = (0, *self.resources.input_shape)
        return np.concatenate(self._x) if self._x else np.zeros(shape, np.float32)

    @property
    def transfer_y(self) -> np.ndarray:
        k = self.resources.n_classes
        return np.concatenate(self._y) if self._y else np.zeros((0, k), np.float32)


class StageTimer:
    """Wall time per named stage of an attack."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class ExtractionResult:
    """What an extraction attack got.

    Attributes:
        attack: the attack's kind.
        thief: the stolen model (``None`` if nothing could be trained, e.g. refused at once).
        queries: queries answered by the oracle.
        budget: queries the attack was allowed.
        seconds: wall time per stage (``query``, ``train``, …).
        stopped: why the attack stopped early (``None``: it used its plan or budget).
        transfer_x, transfer_y: the transfer set in query order (for budget curves).
        details: attack-specific figures (rounds, recovered-parameter error, …).
    """

    attack: str
    thief: nn.Module | None
    queries: int
    budget: int
    seconds: dict[str, float]
    stopped: str | None
    transfer_x: np.ndarray
    transfer_y: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


def finish(
    attack: str,
    session: QuerySession,
    timer: StageTimer,
    training: ThiefTraining | None,
    *,
    seed: int,
    thief: nn.Module | None = None,
    details: dict[str, Any] | None = None,
) -> ExtractionResult:
    """Train the final thief on the session's transfer set (unless given) and wrap up."""
    x, y = session.transfer_x, session.transfer_y
    if thief is None and training is not None and len(x) > 0:
        with timer.stage("train"):
            thief = train_thief(
                x,
                y,
                session.resources.input_shape,
                session.resources.n_classes,
                training,
                seed=seed,
                desc=f"{attack} thief",
            )
    return ExtractionResult(
        attack=attack,
        thief=thief,
        queries=session.used,
        budget=session.budget,
        seconds=dict(timer.seconds),
        stopped=session.stopped if session.stopped != "budget" else None,
        transfer_x=x,
        transfer_y=y,
        details={**(details or {}), "labels_only": session.labels_only},
    )


def params_json(params: Any) -> dict[str, Any]:
    """An attack's parameter dataclass as JSON."""
    return asdict(params)
