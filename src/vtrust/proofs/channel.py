"""The two ends of a public-coin proof, one prover and one verifier written once for both
modes.

A prover is a generator that yields :class:`Send` (a message: a kind and a list of
integers) or :data:`DRAW` (it needs the next challenge; the reply is an F_{p^2} pair).
A verifier is a plain function of a :class:`VerifierChannel`: ``receive(kind, count)``
returns the next message after checking its kind and length, ``draw()`` the next
challenge.

* Interactive (:class:`InteractiveChannel`): the verifier's challenges come from
  :mod:`secrets` (or a seeded generator in tests, reported insecure) and reach the
  prover in order, when it asks for them.
* Fiat–Shamir (:func:`prove_fiat_shamir`, :class:`FiatShamirChannel`): both ends derive
  every challenge from a :class:`~vtrust.proofs.sumcheck.Transcript` that has absorbed
  the statement and every earlier message, so the prover's message list is the proof.

A prover that asks for a challenge the verifier has not drawn, or sends a message the
verifier does not expect, desynchronises the conversation: the verifier rejects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.errors import ProofRejected
from vtrust.proofs import ext as X
from vtrust.proofs import field as F
from vtrust.proofs.sumcheck import Transcript


@dataclass(frozen=True)
class Send:
    """One prover message: ``values`` (a list, or an int64 array for long ones) are
    field elements in [0, p) unless the verifier's ``receive`` declares them signed."""

    kind: str
    values: Any


DRAW = object()  #: what a prover yields to ask for the next challenge

ProverGen = Generator[Any, Any, None]


class VerifierChannel(ABC):
    """What a verifier reads from and draws from; subclasses say where messages and
    challenges come from."""

    @abstractmethod
    def _next(self, kind: str) -> Send:
        """The next message (unchecked)."""

    @abstractmethod
    def draw(self) -> X.Ext:
        """The next challenge."""

    def receive(
        self, kind: str, count: int, *, bound: int | None = None, array: bool = False
    ) -> Any:
        """The next message's values: ``count`` integers, each in [0, p) or — with
        ``bound`` — signed with |v| < bound; a list, or with ``array`` an int64 array.
        :class:`ProofRejected` otherwise."""
        message = self._next(kind)
        if not isinstance(message, Send) or message.kind != kind:
            raise ProofRejected(f"expected a {kind!r} message")
        values = _integers(message.values, kind, count)
        low, high = (0, F.P) if bound is None else (-bound + 1, bound)
        if values.size and not (low <= int(values.min()) and int(values.max()) < high):
            beyond = "out of range" if bound is None else f"beyond ±{bound}"
            raise ProofRejected(f"{kind!r} message holds a value {beyond}")
        self._accepted(kind, values)
        return values if array else values.tolist()

    def _accepted(self, kind: str, values: np.ndarray) -> None:  # noqa: B027 — a hook, no-op by default
        """A checked message (Fiat–Shamir absorbs it here, never before the checks;
        interactively there is nothing to do)."""


def _integers(values: Any, kind: str, count: int) -> np.ndarray:
    """A message's values as an int64 array of ``count``; ProofRejected otherwise."""
    if isinstance(values, np.ndarray):
        if values.dtype not in (np.int64, np.uint64) or values.ndim != 1:
            raise ProofRejected(f"{kind!r} message must hold integers")
        if values.dtype == np.uint64 and values.size and int(values.max()) >= 1 << 63:
            raise ProofRejected(f"{kind!r} message holds a value out of range")
        out = values.astype(np.int64, copy=False)
    elif isinstance(values, list):
        if not all(type(v) is int for v in values):
            raise ProofRejected(f"{kind!r} message holds a value that is not an integer")
        try:
            out = np.array(values, dtype=np.int64)
        except OverflowError:
            raise ProofRejected(f"{kind!r} message holds a value out of range") from None
    else:
        raise ProofRejected(f"{kind!r} message must hold a list of integers")
    if out.shape != (count,):
        raise ProofRejected(f"{kind!r} message must hold {count} values")
    return out


class InteractiveChannel(VerifierChannel):
    """Prover and verifier in one process; challenges from ``challenges.draw_ext()``
    (:class:`~vtrust.proofs.protocol.RandomChallenges`)."""

    def __init__(self, prover: ProverGen, challenges) -> None:
        self.prover = prover
        self.challenges = challenges
        self.pending: deque[X.Ext] = deque()
        self.reply: Any = None
        self.started = False

    def draw(self) -> X.Ext:
        value = self.challenges.draw_ext()
        self.pending.append(value)
        return value

    def _next(self, kind: str) -> Send:
        while True:
            try:
                item = next(self.prover) if not self.started else self.prover.send(self.reply)
            except StopIteration:
                raise ProofRejected(f"the prover stopped before its {kind!r} message") from None
            self.started = True
            if item is DRAW:
                if not self.pending:
                    raise ProofRejected("the prover asked for a challenge out of turn")
                self.reply = self.pending.popleft()
                continue
            self.reply = None
            if isinstance(item, Send) and isinstance(item.values, np.ndarray):
                # the prover runs on between messages: a copy, so that it cannot change
                # what the verifier already read (its checks and its later use agree)
                return Send(item.kind, item.values.copy())
            return item


class FiatShamirChannel(VerifierChannel):
    """Replays a Fiat–Shamir proof (a list of :class:`Send`) through ``transcript``."""

    def __init__(self, messages: list[Send], transcript: Transcript) -> None:
        self.messages = deque(messages)
        self.transcript = transcript

    def draw(self) -> X.Ext:
        return self.transcript.draw_ext()

    def _next(self, kind: str) -> Send:
        if not self.messages:
            raise ProofRejected(f"the proof ended before its {kind!r} message")
        return self.messages.popleft()

    def _accepted(self, kind: str, values: np.ndarray) -> None:
        absorb(self.transcript, Send(kind, values))

    def finish(self) -> None:
        """Every message was read; ProofRejected if the proof holds more."""
        if self.messages:
            raise ProofRejected(f"the proof holds {len(self.messages)} messages too many")


def absorb(transcript: Transcript, message: Send) -> None:
    """A message into the transcript, whatever holds its values (list or array): as the
    compact bytes of their field representatives (p − |v| for v < 0; injective for
    |v| < p/2, which every accepted message satisfies)."""
    values = message.values
    arr = values if isinstance(values, np.ndarray) else np.array(values, dtype=np.int64)
    if arr.dtype == np.int64 and arr.size and int(np.abs(arr).max()) < F.P // 2:
        transcript.absorb(message.kind, F.compact_bytes_int(arr))  # the same bytes, no copy
    else:
        transcript.absorb(message.kind, F.compact_bytes(F.elements(arr)))


def prove_fiat_shamir(prover: ProverGen, transcript: Transcript) -> list[Send]:
    """Run ``prover`` against ``transcript``: its messages, in order (the proof)."""
    messages: list[Send] = []
    reply: Any = None
    started = False
    while True:
        try:
            item = prover.send(reply) if started else next(prover)
        except StopIteration:
            return messages
        started = True
        if item is DRAW:
            reply = transcript.draw_ext()
        else:
            absorb(transcript, item)
            messages.append(item)
            reply = None
