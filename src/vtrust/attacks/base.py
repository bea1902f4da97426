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


@dataclass(frozen=True)
class IdTactics:
    """How an attacker uses client ids (what a thief who has read the detectors does).

    Attributes:
        rotate_every: a new client id after this many answered queries (sybil rotation;
            0: one id), so no per-client statistic ever sees more.
        on_refusal: ``stop`` (the default), or ``new-id``: carry on under a fresh id,
            asking the refused queries again — a refusal names the id, not the query.
            A budget that the device itself enforces (a meter) stops it either way.
    """

    rotate_every: int = 0
    on_refusal: str = "stop"

    def __post_init__(self) -> None:
        if self.rotate_every < 0:
            raise InputError(f"rotate_every must be non-negative, got {self.rotate_every}")
        if self.on_refusal not in ("stop", "new-id"):
            raise InputError(f"on_refusal must be stop or new-id, got {self.on_refusal!r}")


DEVICE_LIMITS = ("meter",)  # refusals no new client id gets around


class QuerySession:
    """One attack's access to the oracle: spends at most ``budget`` queries, records the
    transfer set in query order, and turns a refusal into a clean stop (or, with
    :class:`IdTactics`, into a fresh client id).

    Answers are normalised to probability rows: a label-only oracle (or ``labels_only``)
    gives one-hot rows. ``ids`` maps every client id used to the attacker's total query
    count when it started; ``refused_ids`` lists the ids a defense refused, each with
    the queries it had answered.
    """

    def __init__(self, resources: AttackerResources, budget: int, *, labels_only: bool,
                 tactics: IdTactics = IdTactics()) -> None:  # fmt: skip
        if budget < 0:
            raise InputError(f"query budget must be non-negative, got {budget}")
        self.resources = resources
        self.budget = budget
        self.labels_only = labels_only
        self.tactics = tactics
        self.used = 0
        self.stopped: str | None = None
        self.ids: dict[str, int] = {}
        self.refused_ids: list[tuple[str, int]] = []
        self._id_used = self._made = 0
        self._client = self._fresh_id()
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self._who: list[str] = []

    @property
    def client_id(self) -> str:
        """The id the next query is sent under."""
        return self._client

    def _fresh_id(self) -> str:
        base = self.resources.client_id
        rotating = self.tactics.rotate_every or self.tactics.on_refusal == "new-id"
        self._made += 1
        self._id_used = 0
        return f"{base}-{self._made - 1:05d}" if rotating else base

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
        rows, done = [], 0
        while done < len(x) and self.stopped is None:
            rotate = self.tactics.rotate_every
            piece = x[done : done + rotate - self._id_used] if rotate else x[done:]
            got, refused = self._ask_once(piece)
            rows.append(got)
            done += len(got)
            self._id_used += len(got)
            if refused or (rotate and self._id_used >= rotate):
                self._client = self._fresh_id()
        return np.concatenate(rows)

    def _ask_once(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """One oracle call under the current id: the answer rows, and whether the id
        was refused and the session goes on under a new one."""
        refused = False
        self.ids.setdefault(self._client, self.used)
        try:
            answers = self.resources.oracle.query(x, client_id=self._client)
        except QueryRefused as refusal:
            answers = refusal.answered if refusal.answered is not None else x[:0]
            answered_here = self._id_used + len(answers)
            self.refused_ids.append((self._client, answered_here))
            refused = (self.tactics.on_refusal == "new-id"
                       and refusal.defense not in DEVICE_LIMITS
                       and answered_here > 0)  # a fresh id refused at once: give up  # fmt: skip
            if not refused:
                self.stopped = f"refused by {refusal.defense} after {refusal.queries} queries"
        rows = self._rows(answers)
        self._x.append(x[: len(rows)])
        self._y.append(rows)
        self._who.extend([self._client] * len(rows))
        self.used += len(rows)
        return rows, refused

    @property
    def row_clients(self) -> list[str]:
        """The client id each answered query was sent under, in query order."""
        return list(self._who)

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
        client_ids: every client id the attack queried under, with the attacker's total
            query count when it started (one id unless its tactics rotate ids).
        refused_ids: the ids a defense refused, each with the queries it had answered.
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
    client_ids: dict[str, int] = field(default_factory=dict)
    refused_ids: list[tuple[str, int]] = field(default_factory=list)

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
        client_ids=dict(session.ids),
        refused_ids=list(session.refused_ids),
    )


def params_json(params: Any) -> dict[str, Any]:
    """An attack's parameter dataclass as JSON."""
    return asdict(params)
