"""Deployment presets: several catalog defenses deployed as one, under one name.

A preset entry lists other defense entries (``members``)::

    # defenses/default.toml
    kind = "preset"
    [params]
    members = ["shift-refuse", "prada-poison", "shift-global"]

so a preset goes wherever one defense name goes (``--defense default``, a matrix row,
``audit``). Every member observes each batch; the preset refuses from the earliest
query any member refuses, else flags at the earliest query any member flags (the reason
names the member), and the answers pass through every member's transform in order —
exactly what the members listed one after another in a deployment would do, except that
the oracle records the flag under the preset's name. Presets do not nest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.oracle import ALLOW, Decision, QueryDefense, Verdict


@dataclass(frozen=True)
class PresetParams:
    """Attributes:
    members: defense catalog names (or TOML paths), applied in order; distinct, and
        none of them a preset.
    """

    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            raise InputError("a preset needs at least one member defense")
        if len(set(self.members)) != len(self.members):
            raise InputError(f"a preset lists a member twice: {list(self.members)}")


class PresetDefense(QueryDefense):
    """The members of a preset as one query-side defense."""

    name = "preset"

    def __init__(self, params: PresetParams) -> None:
        self.params = params
        self.members: list[QueryDefense] = []

    def bind(self, context: Any) -> None:
        from vtrust.catalog import load_entry
        from vtrust.defenses.deployment import build_defenses

        entries = [load_entry("defenses", name) for name in self.params.members]
        nested = [e.name for e in entries if e.kind == "preset"]
        if nested:
            raise InputError(f"preset {self.name}: presets do not nest ({', '.join(nested)})")
        self.members = build_defenses(entries, context)

    def observe(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> Decision:
        if not self.members:
            raise InputError(f"preset {self.name} is not deployed: call bind() first")
        strongest: dict[Verdict, tuple[int, str, str]] = {}
        for member in self.members:
            decision = member.observe(client_id, x, probs)
            if decision.verdict is Verdict.ALLOW:
                continue
            at = len(x) - 1 if decision.at is None else int(decision.at)
            best = strongest.get(decision.verdict)
            if best is None or at < best[0]:
                strongest[decision.verdict] = (at, member.name, decision.reason)
        for verdict in (Verdict.REFUSE, Verdict.FLAG):
            if verdict in strongest:
                at, member, reason = strongest[verdict]
                return Decision(verdict, at=at, reason=f"{member}: {reason}")
        return ALLOW

    def transform(self, client_id: str, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        for member in self.members:
            probs = member.transform(client_id, x, probs)
        return probs


def leaf_defenses(defenses: Iterable[QueryDefense]) -> Iterator[QueryDefense]:
    """Every defense of a deployment with each preset replaced by its members (for what
    acts on a member: saving detector state, reading a detector's statistics)."""
    for defense in defenses:
        if isinstance(defense, PresetDefense):
            yield from defense.members
        else:
            yield defense


register("defenses", "preset", PresetParams, "several defenses deployed as one name")(PresetDefense)
