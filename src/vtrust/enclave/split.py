"""Split execution of a zoo model between a simulated enclave and the untrusted host.

A model is a sequence of *units*: a layer with weights (convolution, linear) and the
weight-free layers after it (activation, pooling, flatten). A :class:`SplitSpec` says
which units run inside:

* ``none`` — everything on the host (no enclave);
* ``all`` — MLCapsule: the whole model inside, the host only passes data in and out;
* ``first:K`` / ``last:K`` — the first or last K units inside, the rest on the host;
* ``slalom`` — every linear layer outsourced to the host (blinded, checked with
  Freivalds' algorithm), everything else inside; see :mod:`vtrust.enclave.slalom`.

Float modes run the very same torch modules inside and outside, so their predictions
equal the plain model's exactly. Host time is measured and charged as host work;
inside work goes through :meth:`Enclave.ecall` (one call per contiguous inside span).
"""

from __future__ import annotations

import copy
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from vtrust.enclave.costs import CostModel
from vtrust.enclave.runtime import Enclave
from vtrust.errors import InputError

Mode = Literal["none", "all", "first", "last", "slalom"]
_SPEC = re.compile(r"^(none|all|slalom|(first|last):(\d+))$")


@dataclass(frozen=True)
class SplitSpec:
    mode: Mode
    k: int = 0

    @classmethod
    def parse(cls, text: str) -> SplitSpec:
        match = _SPEC.match(text.strip())
        if not match:
            raise InputError(
                f"bad split {text!r}: use none, all, slalom, first:K or last:K (K ≥ 0)"
            )
        if match.group(2):
            return cls(match.group(2), int(match.group(3)))  # type: ignore[arg-type]
        return cls(match.group(1))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.mode}:{self.k}" if self.mode in ("first", "last") else self.mode

    def inside(self, n_units: int) -> list[bool]:
        """Which of ``n_units`` units run inside (Slalom: none of the weights are secret)."""
        if self.mode in ("first", "last") and self.k > n_units:
            raise InputError(f"split {self}: the model has only {n_units} units")
        if self.mode == "all":
            return [True] * n_units
        if self.mode == "first":
            return [i < self.k for i in range(n_units)]
        if self.mode == "last":
            return [i >= n_units - self.k for i in range(n_units)]
        return [False] * n_units


def run_segment(inside, key: str, x: torch.Tensor) -> torch.Tensor:
    """The split enclave's entry point: one inside segment of the model on ``x``."""
    return inside.part[key](x)


def _has_weights(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def units(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    """The model's layers grouped into units: a weighted layer and the weight-free layers
    after it (those before the first weighted layer, e.g. a flatten, join the first)."""
    layers = list(model.layers.named_children()) if hasattr(model, "layers") else []
    if not layers:
        raise InputError("split execution needs a zoo model (a named layer sequence)")
    groups: list[list[tuple[str, nn.Module]]] = [[]]
    for name, module in layers:
        if _has_weights(module) and any(_has_weights(m) for _, m in groups[-1]):
            groups.append([])
        groups[-1].append((name, module))  # leading weight-free layers join the first unit
    return groups


def inside_layers(model: nn.Module, spec: SplitSpec) -> list[str]:
    """Names of the weighted layers the host cannot read under ``spec``."""
    flags = spec.inside(len(units(model)))
    return [
        f"layers.{name}"
        for unit, inside in zip(units(model), flags, strict=True)
        if inside
        for name, module in unit
        if _has_weights(module)
    ]


class SplitModel:
    """A float model split per ``spec`` (not ``slalom``) between an enclave and the host."""

    def __init__(
        self,
        model: nn.Module,
        spec: SplitSpec,
        *,
        cost: CostModel | None = None,
        root_secret: bytes | None = None,
    ) -> None:
        if spec.mode == "slalom":
            raise InputError("use vtrust.enclave.slalom for the slalom split")
        self.spec = spec
        groups = units(copy.deepcopy(model))
        flags = spec.inside(len(groups))
        self.segments: list[tuple[bool, nn.Sequential]] = []
        for unit, inside in zip(groups, flags, strict=True):
            if self.segments and self.segments[-1][0] == inside:
                for name, module in unit:
                    self.segments[-1][1].add_module(name, module)
            else:
                self.segments.append((inside, nn.Sequential(OrderedDict(unit))))
        part = nn.ModuleDict(
            {str(i): seq for i, (inside, seq) in enumerate(self.segments) if inside}
        )
        self.enclave = (
            Enclave(
                part,
                role=f"split:{spec}",
                entry_points=(run_segment,),
                cost=cost,
                root_secret=root_secret,
            )  # fmt: skip
            if len(part)
            else None
        )
        self.cost = cost or CostModel()
        self.host_seconds = 0.0
        # the host keeps only the outside segments
        self._host = {i: seq.eval() for i, (inside, seq) in enumerate(self.segments) if not inside}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (inside, _) in enumerate(self.segments):
            if inside:
                assert self.enclave is not None
                x = self.enclave.ecall(run_segment, str(i), x)
            else:
                started = time.perf_counter()
                x = self._host[i](x)
                self.host_seconds += time.perf_counter() - started
        return x

    def modelled_seconds(self) -> float:
        """Modelled time so far: the enclave's ledger plus host work."""
        inside = self.enclave.ledger.total if self.enclave else 0.0
        return inside + self.host_seconds / self.cost.host_speedup
