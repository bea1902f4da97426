"""Progress display for long work, on stderr, switched off for the whole process by the
CLI's ``--quiet`` flag or the ``VTRUST_QUIET`` environment variable.

* On a terminal: tqdm bars, and :func:`stage` lines between them.
* In a log (stderr not a terminal): no bars; :func:`stage` lines, and — while a command
  runs (:func:`running`, which the CLI enters) — a heartbeat thread that, whenever
  nothing was printed for ``HEARTBEAT_SECONDS``, prints where the work is —
  the innermost running bar's position, elapsed time and an estimate of what is left, or
  the last stage and how long it has run — so a CI log never looks like a hung process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


# 5 s of silence, checked twice a second: a line within 10 s even when an import or a
# compiler holds the interpreter lock for a few seconds (measured: up to ~3 s under load)
def _heartbeat_setting(raw: str) -> tuple[float, str | None]:
    """``VTRUST_HEARTBEAT`` as seconds, or the default 5 and why the value was refused
    (the CLI reports it as bad input; a library user keeps the default)."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds < float("inf")):
        return 5.0, f"VTRUST_HEARTBEAT must be a positive number of seconds, got {raw!r}"
    return seconds, None


HEARTBEAT_SECONDS, SETTING_ERROR = _heartbeat_setting(os.environ.get("VTRUST_HEARTBEAT", "5"))

_enabled = os.environ.get("VTRUST_QUIET", "") in ("", "0")
_lock = threading.Lock()
_state: dict[str, Any] = {"last_print": time.monotonic(), "stage": None, "stage_at": 0.0,
                          "active": 0, "started": time.monotonic()}  # fmt: skip
_bars: list[LogBar] = []
_heartbeat: threading.Thread | None = None


def set_enabled(enabled: bool) -> None:
    """Turn progress display on or off for the whole process."""
    global _enabled
    _enabled = enabled


def _in_log() -> bool:
    return _enabled and not sys.stderr.isatty()


def _emit(line: str) -> None:
    with _lock:
        _state["last_print"] = time.monotonic()
    if sys.stderr.isatty():  # around the bars
        tqdm.write(line, file=sys.stderr)
    else:  # a log has no bars: no need for tqdm's lock, which a busy pool may hold
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class LogBar:
    """A bar's counterpart in a log: counts, and tells the heartbeat where it is."""

    def __init__(self, iterable: Iterable[T] | None, desc: str, total: int | None) -> None:
        self.iterable = iterable
        self.desc = desc
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.n = 0
        self.postfix = ""
        self.started = time.monotonic()
        with _lock:
            _bars.append(self)
        _ensure_heartbeat()

    def __iter__(self) -> Iterator[T]:
        try:
            for item in () if self.iterable is None else self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the position (a loss, say)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        with _lock:
            if self in _bars:
                _bars.remove(self)

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        extra = f" ({self.postfix})" if self.postfix else ""
        if self.total:
            left = elapsed / self.n * (self.total - self.n) if self.n else None
            eta = f", ~{_duration(left)} left" if left is not None else ""
            return f"[{self.desc}] {self.n}/{self.total}{extra}, {_duration(elapsed)} elapsed{eta}"
        return f"[{self.desc}] {self.n} done{extra}, {_duration(elapsed)} elapsed"


def _beat() -> None:
    while True:
        time.sleep(min(0.5, HEARTBEAT_SECONDS / 4))
        if not _in_log():
            continue
        with _lock:
            quiet_for = time.monotonic() - _state["last_print"]
            inner = _bars[-1] if _bars else None
            stage_text, stage_at = _state["stage"], _state["stage_at"]
            active, started = _state["active"], _state["started"]
        if not active or quiet_for < HEARTBEAT_SECONDS:
            continue
        if inner is not None:
            _emit(inner.status())
        elif stage_text is not None:
            _emit(f"{stage_text} … still running, {_duration(time.monotonic() - stage_at)}")
        else:
            _emit(f"[vtrust] working, {_duration(time.monotonic() - started)} elapsed")


@contextlib.contextmanager
def running() -> Iterator[None]:
    """The span of one command: the heartbeat speaks only inside it (so a process that
    ran a command and moved on — a test suite, a notebook — hears nothing stale), and
    starts at once, before the command's imports and set-up."""
    with _lock:
        _state["active"] += 1
        _state.update(last_print=time.monotonic(), started=time.monotonic(), stage=None)
    _ensure_heartbeat()
    try:
        yield
    finally:
        with _lock:
            _state["active"] -= 1


def _ensure_heartbeat() -> None:
    global _heartbeat
    if _heartbeat is None and _in_log():
        with _lock:
            if _heartbeat is None:
                _heartbeat = threading.Thread(target=_beat, name="vtrust-progress", daemon=True)
                _heartbeat.start()


def bar(iterable: Iterable[T] | None, desc: str, total: int | None = None, **kwargs):
    """A progress bar over ``iterable`` labelled ``desc``: tqdm on a terminal, a
    :class:`LogBar` the heartbeat reports in a log, nothing when disabled."""
    if _in_log():
        return LogBar(iterable, desc, total)
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=not (_enabled and sys.stderr.isatty()),
        leave=False,
        file=sys.stderr,
        **kwargs,
    )


def stage(message: str) -> None:
    """Print one progress line (a stage of a longer job) to stderr, if enabled."""
    if _enabled:
        with _lock:
            _state["stage"], _state["stage_at"] = message, time.monotonic()
        _ensure_heartbeat()
        _emit(message)
