"""Progress display for long work: tqdm bars and stage lines on stderr, switched off for
the whole process by the CLI's ``--quiet`` flag or the ``VTRUST_QUIET`` environment variable."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_enabled = os.environ.get("VTRUST_QUIET", "") in ("", "0")


def set_enabled(enabled: bool) -> None:
    """Turn progress display on or off for the whole process."""
    global _enabled
    _enabled = enabled


def bar(iterable: Iterable[T], desc: str, total: int | None = None, **kwargs) -> tqdm:
    """A tqdm progress bar over ``iterable`` labelled ``desc``.

    Drawn only when enabled and stderr is a terminal; logs get :func:`stage` lines instead.
    """
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
        tqdm.write(message, file=sys.stderr)
