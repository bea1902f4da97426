"""How a model is deployed behind query-side defenses.

Some defenses need more than their catalog parameters: a detector compares queries with
in-distribution data the defender owns, MAD needs the model's input shape and class
count for its surrogate. :class:`DefenseContext` carries that; :func:`build_defenses`
instantiates catalog entries and binds them to it; :class:`Deployment` is the value
object the attack runners and the CLI pass around (which defenses, which output mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from vtrust.catalog import Entry, load_entry
from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.oracle import Oracle, OutputMode, QueryDefense


@dataclass(frozen=True)
class DefenseContext:
    """What the defender knows when deploying a model.

    Attributes:
        model: the deployed model.
        reference: in-distribution data the defender owns (the victim's training split),
            used by detectors to calibrate what benign queries look like.
        seed: seeds every random choice a defense makes (surrogates, noise, data splits)
            — for reproducible experiments; None (the default) leaves secret choices
            (noise) to a CSPRNG and the rest to seed 0.
    """

    model: nn.Module
    reference: Dataset
    seed: int | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.reference.input_shape

    @property
    def n_classes(self) -> int:
        return self.reference.n_classes


def build_defense(entry: Entry, context: DefenseContext) -> QueryDefense:
    """Instantiate ``entry`` (a ``defenses`` catalog entry), named after the entry and
    bound to ``context``."""
    if entry.section != "defenses":
        raise InputError(f"{entry.name} is a {entry.section} entry, not a defense")
    defense = entry.build()
    defense.name = entry.name  # flags and refusals are reported under the entry's name
    defense.bind(context)
    return defense


def build_defenses(entries: Sequence[Entry], context: DefenseContext) -> list[QueryDefense]:
    """:func:`build_defense` for each entry, in order; names must be distinct."""
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise InputError(f"a defense is listed twice: {names}")
    return [build_defense(entry, context) for entry in entries]


@dataclass(frozen=True)
class Deployment:
    """Which defenses guard a model and what it returns to clients.

    Attributes:
        defenses: catalog entries, applied in order.
        output: probabilities or top-1 labels.
    """

    defenses: tuple[Entry, ...] = field(default_factory=tuple)
    output: OutputMode = OutputMode.PROBS

    @classmethod
    def of(cls, names: Sequence[str] = (), *, labels: bool = False) -> Deployment:
        """A deployment from defense names or TOML paths (as the CLI receives them)."""
        return cls(
            tuple(load_entry("defenses", n) for n in names),
            OutputMode.LABELS if labels else OutputMode.PROBS,
        )

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.defenses]

    def oracle(self, model: nn.Module, reference: Dataset, *, seed: int | None = None) -> Oracle:
        """An oracle answering with ``model`` behind freshly built defenses."""
        context = DefenseContext(model, reference, seed)
        return Oracle(
            model,
            reference.input_shape,
            output=self.output,
            defenses=build_defenses(self.defenses, context),
        )
