"""Options the study scripts share for reduced runs (what the determinism tests run):
a subset of catalog entries, and fewer training steps for every extraction thief."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from vtrust.catalog import Entry


def add_subset_option(parser: argparse.ArgumentParser, kind: str, *, what: str) -> None:
    """``--<kind> A,B``: only these catalog entries of ``kind`` (``attacks``/``defenses``)."""
    parser.add_argument(f"--{kind}", default=None,
                        help=f"Comma-separated catalog names: only these {what} (a reduced "
                        "run; default: the study's own list).")  # fmt: skip


def add_thief_steps_option(parser: argparse.ArgumentParser) -> None:
    """``--thief-steps N``: every extraction thief trained for N steps (a reduced run)."""
    parser.add_argument("--thief-steps", type=int, default=None,
                        help="Override every extraction thief's training steps (a reduced "
                        "run; the default is each entry's own).")  # fmt: skip


def subset(parser: argparse.ArgumentParser, kind: str, value: str | None,
           default: Sequence[str]) -> list[str]:  # fmt: skip
    """The names ``--<kind>`` chose, in the default's order (every name in ``default``
    when not given); a name outside ``default`` is a usage error."""
    if value is None:
        return list(default)
    chosen = set(value.split(","))
    if chosen - set(default):
        parser.error(f"--{kind}: {sorted(chosen - set(default))} are not in this study "
                     f"(choose from {', '.join(default)})")  # fmt: skip
    return [name for name in default if name in chosen]


def with_thief_steps(
    parser: argparse.ArgumentParser, entries: Sequence[Entry], steps: int | None
) -> list[Entry]:
    """``entries`` with every extraction thief's training steps set to ``steps`` (as
    they are when ``steps`` is ``None``)."""
    if steps is None:
        return list(entries)
    if steps < 1:
        parser.error("--thief-steps must be at least 1")
    return [
        dataclasses.replace(e, params=dataclasses.replace(e.params, thief_steps=steps))
        if hasattr(e.params, "thief_steps") else e
        for e in entries
    ]  # fmt: skip


def shares(parser: argparse.ArgumentParser, option: str, value: str) -> list[float]:
    """Comma-separated shares in (0, 1] given to ``option``; anything else is a usage
    error."""
    try:
        parsed = [float(part) for part in value.split(",")]
    except ValueError:
        parsed = []
    if not parsed or not all(0 < f <= 1 for f in parsed):
        parser.error(f"{option}: shares in (0, 1], comma-separated, got {value!r}")
    return parsed


def victim_arch(entry: Entry) -> str:
    """The victim an extraction study attacks with ``entry``: equation solving needs the
    softmax regression whose functional form it solves; every other attack the MLP."""
    return "softmax" if entry.kind == "equation-solving" else "mlp"


def train_victims(splits, entries: Sequence[Entry], seed: int) -> dict:
    """Every victim architecture ``entries`` need (:func:`victim_arch`), trained once."""
    from vtrust.models.recipes import train_model

    needed = sorted({victim_arch(e) for e in entries})
    return {arch: train_model(splits, arch, seed=seed).model for arch in needed}
