"""The black-box deployment of a model: what an attacker on the device can query.

An :class:`Oracle` answers ``query(x, client_id=...)`` with class probabilities (or top-1
labels), counts every client's queries, and runs a chain of query-side defenses:

* ``observe`` sees each batch (and the clean probabilities) before it is answered and may
  allow it, flag the client, or refuse it (raising :class:`~vtrust.errors.QueryRefused`);
* ``transform`` may change the probabilities returned (prediction poisoning).

A target may itself stop answering (a metered device whose budget is spent): the
queries it answered are answered, and the call raises :class:`~vtrust.errors.
QueryRefused` naming it, without refusing the client for good (a new budget answers).

Attacks see nothing but this interface.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from vtrust.errors import InputError, QueryRefused
from vtrust.targets.base import Target, as_target
from vtrust.threads import small_work


class Verdict(enum.Enum):
    """What a defense decides about a batch of queries."""

    ALLOW = "allow"
    FLAG = "flag"  # answer, but record that the client looks like an attacker
    REFUSE = "refuse"  # do not answer this or any later query of the client


@dataclass(frozen=True)
class Decision:
    """A defense's decision on one batch.

    Attributes:
        verdict: allow, flag or refuse.
        at: index within the batch of the query that triggered a flag or refusal
            (``None``: the whole batch).
        reason: a short human-readable reason.
    """

    verdict: Verdict = Verdict.ALLOW
    at: int | None = None
    reason: str = ""


ALLOW = Decision()


class QueryDefense:
    """Base class of query-side defenses: by default observes nothing and changes nothing.

    Subclasses override :meth:`observe`, :meth:`transform`, or both. ``name`` identifies
    the defense in reports and errors.
    """

    name: str = "defense"

    def bind(self, context: Any) -> None:
        """Receive the deployment context (a :class:`vtrust.defenses.deployment.DefenseContext`:
        the model and the defender's in-distribution data) before the first query.
        Defenses that need neither ignore it."""

    def observe(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> Decision:
        """Inspect a batch of queries ``x`` with the model's clean ``probs``."""
        return ALLOW

    def transform(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Return the probabilities to answer with (rows of a probability simplex)."""
        return probs


class OutputMode(enum.Enum):
    """What the oracle returns: probability vectors or top-1 labels."""

    PROBS = "probs"
    LABELS = "labels"


@dataclass
class ClientRecord:
    """Per-client accounting: answered queries, and when each defense first flagged it."""

    queries: int = 0
    flagged_at: dict[str, int] | None = None
    refused_by: str | None = None

    def flag(self, defense: str, at_query: int) -> None:
        if self.flagged_at is None:
            self.flagged_at = {}
        self.flagged_at.setdefault(defense, at_query)


class Oracle:
    """A deployed model answering black-box queries through a chain of defenses.

    Args:
        model: the model under audit — a :class:`~vtrust.targets.Target` of any format
            (only its black box is used), or a torch module mapping (N, C, H, W)
            ``float32`` images to logits.
        input_shape: (C, H, W) of a torch module (a target or zoo model knows its own).
        output: return probabilities (default) or top-1 labels.
        defenses: applied in order: every ``observe`` first, then every ``transform``.
        batch_size: how many queries the model evaluates at once.
    """

    def __init__(
        self,
        model: Target | nn.Module,
        input_shape: tuple[int, int, int] | None = None,
        *,
        output: OutputMode | str = OutputMode.PROBS,
        defenses: Sequence[QueryDefense] = (),
        batch_size: int = 256,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch size must be positive, got {batch_size}")
        self.target = as_target(model, input_shape)
        if input_shape is not None and tuple(input_shape) != self.target.input_shape:
            raise InputError(f"the model takes {self.target.input_shape}, not {tuple(input_shape)}")
        self.input_shape = self.target.input_shape
        self.output = OutputMode(output)
        self.defenses = list(defenses)
        self.batch_size = batch_size
        self.clients: dict[str, ClientRecord] = {}
        self.n_classes = self.target.n_classes

    def client(self, client_id: str) -> ClientRecord:
        """The accounting record of ``client_id`` (created on first use)."""
        return self.clients.setdefault(client_id, ClientRecord())

    @property
    def total_queries(self) -> int:
        return sum(rec.queries for rec in self.clients.values())

    def query(self, x: np.ndarray, client_id: str = "default") -> np.ndarray:
        """Answer a batch of queries for ``client_id``.

        Returns:
            (N, n_classes) ``float64`` probabilities, or (N,) ``int64`` labels.

        Raises:
            QueryRefused: a defense refused; ``answered`` holds the outputs of the queries
                of this call that were answered before the refusal.
            InputError: ``x`` has the wrong shape or non-finite values.
        """
        arr = self.target.check_images(x)
        record = self.client(client_id)
        answers: list[np.ndarray] = []
        for start in range(0, len(arr), self.batch_size):
            chunk = arr[start : start + self.batch_size]
            if record.refused_by is not None:
                raise self._refusal(client_id, record, answers, "client was refused before")
            clean, spent = self._predict(chunk)
            chunk = chunk[: len(clean)]
            stop = len(chunk)
            with small_work() if self.defenses else contextlib.nullcontext():
                for defense in self.defenses:
                    decision = defense.observe(client_id, chunk, clean)
                    if decision.verdict is Verdict.ALLOW:
                        continue
                    at = len(chunk) - 1 if decision.at is None else int(decision.at)
                    record.flag(defense.name, record.queries + at + 1)
                    if decision.verdict is Verdict.REFUSE:
                        record.refused_by = defense.name
                        stop = min(stop, at)
                answered = self._answer(client_id, chunk[:stop], clean[:stop])
            record.queries += stop
            answers.append(answered)
            if record.refused_by is not None:
                raise self._refusal(client_id, record, answers, "")
            if spent is not None:  # the device stopped; the client is not refused for it
                raise QueryRefused(client_id, spent.defense, record.queries, str(spent),
                                   self._join(answers))  # fmt: skip
        return self._join(answers)

    def _predict(self, chunk: np.ndarray) -> tuple[np.ndarray, QueryRefused | None]:
        """The model's clean probabilities; a target that stops answering itself (a
        metered device whose budget is spent) gives those it answered and its refusal."""
        try:
            return self.target.predict_proba(chunk, checked=True), None
        except QueryRefused as spent:
            got = np.asarray(spent.answered if spent.answered is not None else chunk[:0])
            if len(got) == 0:
                return np.zeros((0, self.n_classes), dtype=np.float64), spent
            return self.target.probabilities(got.reshape(len(got), -1)), spent

    def _answer(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        if len(x) == 0:  # refused at the chunk's first query: nothing to transform
            return self._join([])
        for defense in self.defenses:
            probs = defense.transform(client_id, x, probs)
        if self.output is OutputMode.LABELS:
            return probs.argmax(axis=1).astype(np.int64)
        return probs

    def _join(self, answers: list[np.ndarray]) -> np.ndarray:
        if answers:
            return np.concatenate(answers)
        if self.output is OutputMode.LABELS:
            return np.zeros((0,), dtype=np.int64)
        return np.zeros((0, self.n_classes), dtype=np.float64)

    def _refusal(
        self, client_id: str, record: ClientRecord, answers: list[np.ndarray], reason: str
    ) -> QueryRefused:
        return QueryRefused(
            client_id, record.refused_by or "?", record.queries, reason, self._join(answers)
        )
