"""What stealing detectors share: per-scope sequential state, the action taken on an
alarm (flag, refuse, or switch the client to poisoned answers), and saving and restoring
that state so a restarted oracle forgets nothing.

A detector subclass supplies a state class (:class:`DetectorState`) and
:meth:`StreamDetector.update`, which feeds one batch into a state and returns the index
of the query that raised the alarm, if any.
"""

from __future__ import annotations

import enum
import io
import json
import os
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vtrust._io import atomic_write_bytes, parse_json
from vtrust.errors import InputError, StateFileError
from vtrust.oracle import ALLOW, Decision, QueryDefense, Verdict

STATE_FORMAT = "vtrust-detector-state/1"


class Action(enum.Enum):
    """What a detector does to a client once it raises an alarm."""

    FLAG = "flag"  # keep answering, record the alarm
    REFUSE = "refuse"  # answer nothing more
    POISON = "poison"  # keep answering, through a poisoning defense


def check_action(action: str, poison: str) -> None:
    """Validate the ``action``/``poison`` pair of a detector's parameters."""
    choices = [a.value for a in Action]
    if action not in choices:
        raise InputError(f"action must be one of {choices}, got {action!r}")
    if action == Action.POISON.value and not poison:
        raise InputError("action 'poison' needs the name of a poisoning defense in 'poison'")


@dataclass(frozen=True)
class AlarmParams:
    """What every detector does on an alarm (its parameter class derives from this).

    Attributes:
        action: ``flag``, ``refuse`` or ``poison``.
        poison: the poisoning defense (catalog name) used when ``action = "poison"``.
    """

    action: str = "flag"
    poison: str = ""

    def __post_init__(self) -> None:
        check_action(self.action, self.poison)


class DetectorState(ABC):
    """One scope's state. Subclasses store only numbers and arrays, so the state
    round-trips through :meth:`to_arrays` / :meth:`from_arrays` without pickling."""

    alarm_at: int | None = None  # query index (within the scope) of the first alarm

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as a named array (numbers as 1-element arrays)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DetectorState:
        """The inverse of :meth:`to_arrays`; raises ``KeyError``/``ValueError`` on
        missing or inconsistent arrays (reported as :class:`StateFileError`)."""


@dataclass
class _Alarm:
    """A client that raised an alarm: the first query index affected in the batch being
    answered (for poisoning), then 0 for every later batch."""

    from_index: int


class StreamDetector(QueryDefense, ABC):
    """Base of sequential detectors; ``params`` must have ``action`` and ``poison``.

    The detector keeps one :class:`DetectorState` per scope key (by default the client
    id). Once a client raises an alarm, every later batch of that client gets the same
    verdict (flag or refuse) at its first query, and with ``action = "poison"`` every
    answer from the alarm on passes through the poisoning defense.
    """

    state_class: ClassVar[type[DetectorState]]  # set by each detector

    def __init__(self, params: Any) -> None:
        check_action(params.action, params.poison)
        self.params = params
        self.action = Action(params.action)
        self.states: dict[str, DetectorState] = {}
        self.alarms: dict[str, _Alarm] = {}
        self._poison: QueryDefense | None = None

    # -- binding -------------------------------------------------------------------
    def bind(self, context: Any) -> None:
        if self.action is Action.POISON:
            from vtrust.catalog import load_entry
            from vtrust.defenses.deployment import build_defense

            self._poison = build_defense(load_entry("defenses", self.params.poison), context)

    # -- subclass interface ----------------------------------------------------------
    def scope_key(self, client_id: str) -> str:
        """The state a client's queries feed (its own by default)."""
        return client_id

    def new_state(self) -> DetectorState:
        return self.state_class()

    @abstractmethod
    def update(
        self, state: DetectorState, x: np.ndarray, probs: np.ndarray, client_id: str
    ) -> int | None:
        """Feed ``client_id``'s batch into ``state``; the batch index of the query that
        raises an alarm against this client, or ``None``."""

    # -- QueryDefense ----------------------------------------------------------------
    def observe(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> Decision:
        if client_id in self.alarms:
            self.alarms[client_id].from_index = 0
            return self._decision(0, "alarm raised earlier")
        key = self.scope_key(client_id)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = self.new_state()
        at = self.update(state, x, probs, client_id)
        if at is None:
            return ALLOW
        self.alarms[client_id] = _Alarm(at)
        return self._decision(at, "stealing pattern detected")

    def transform(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        alarm = self.alarms.get(client_id)
        if self._poison is None or alarm is None or alarm.from_index >= len(probs):
            return probs
        out = probs.copy()
        start = alarm.from_index
        out[start:] = self._poison.transform(client_id, x[start:], probs[start:])
        return out

    def _decision(self, at: int, reason: str) -> Decision:
        verdict = Verdict.REFUSE if self.action is Action.REFUSE else Verdict.FLAG
        return Decision(verdict, at=at, reason=reason)

    # -- persistence -----------------------------------------------------------------
    def save_state(self, path: str | os.PathLike[str]) -> Path:
        """Write every scope's state and the alarmed clients to ``path`` (an ``.npz``
        archive of plain arrays plus a JSON manifest; written atomically)."""
        arrays: dict[str, np.ndarray] = {}
        keys = sorted(self.states)
        for i, key in enumerate(keys):
            for name, value in self.states[key].to_arrays().items():
                arrays[f"s{i}/{name}"] = np.asarray(value)
        manifest = {
            "format": STATE_FORMAT,
            "detector": type(self).__name__,
            "scopes": keys,
            "alarms": {client: a.from_index for client, a in sorted(self.alarms.items())},
        }
        arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return atomic_write_bytes(path, buffer.getvalue())

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Replace this detector's state with the one saved at ``path``.

        Raises:
            StateFileError: the file is missing, malformed or saved by another detector.
        """
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise StateFileError(f"{path}: not a detector state file ({exc})") from None
        try:
            manifest = parse_json(arrays.pop("manifest").tobytes().decode())
            if manifest.get("format") != STATE_FORMAT:
                raise StateFileError(f"{path}: unknown state format {manifest.get('format')!r}")
            if manifest.get("detector") != type(self).__name__:
                raise StateFileError(
                    f"{path}: state of a {manifest.get('detector')}, not a {type(self).__name__}"
                )
            states = {}
            for i, key in enumerate(manifest["scopes"]):
                prefix = f"s{i}/"
                part = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                states[str(key)] = self.state_class.from_arrays(part)
            alarms = {str(c): _Alarm(int(v)) for c, v in dict(manifest["alarms"]).items()}
        except StateFileError:
            raise
        except (KeyError, TypeError, ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise StateFileError(f"{path}: malformed detector state ({exc})") from None
        self.states, self.alarms = states, alarms
