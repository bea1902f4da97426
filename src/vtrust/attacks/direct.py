"""Direct stealing: the attacker copied (part of) the weights off the device.

Fine-tune the stolen copy with a fraction of the attacker split (at ``finetune_lr_scale``
× the architecture's learning rate) and compare with training the same architecture
from scratch on the same data: the gap is what the stolen weights were worth. Each row
also reports the copy as stolen, before any fine-tuning. Layers the attacker could not
read (``missing_layers``, e.g. the part kept inside an enclave) are re-initialised first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vtrust import progress
from vtrust.catalog import register
from vtrust.data import Dataset
from vtrust.errors import InputError
from vtrust.models import ARCHITECTURES, TrainConfig, accuracy, agreement, build_model, fit


@dataclass(frozen=True)
class DirectStealingParams:
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.25, 0.5, 1.0])
    missing_layers: list[str] = field(default_factory=list)
    epochs: int = 30
    finetune_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise InputError("fractions must be a non-empty list of values in (0, 1]")
        if self.epochs < 1 or self.finetune_lr_scale <= 0:
            raise InputError("epochs and finetune_lr_scale must be positive")


def reinitialise(model: nn.Module, layer_names: list[str], seed: int) -> nn.Module:
    """Fresh random weights for the named layers (those the attacker does not have)."""
    modules = dict(model.named_modules())
    unknown = [
        n for n in layer_names if n not in modules or not hasattr(modules[n], "reset_parameters")
    ]
    if unknown:
        raise InputError(f"no resettable layer(s) {unknown} in the model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layer_names:
            modules[name].reset_parameters()
    return model


class DirectStealing:
    kind = "direct-stealing"

    def __init__(self, params: DirectStealingParams = DirectStealingParams()) -> None:
        self.params = params

    def run(
        self,
        stolen: nn.Module,
        data: Dataset,
        test: Dataset,
        *,
        victim: nn.Module | None = None,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """One row per data fraction: fine-tuned copy vs from-scratch accuracy (and their
        fidelity to ``victim`` when given)."""
        p = self.params
        spec = stolen.spec
        config_base = ARCHITECTURES[spec.name].train_defaults
        start = reinitialise(copy.deepcopy(stolen), p.missing_layers, seed)
        rows = []
        for fraction in progress.bar(p.fractions, desc="direct stealing"):
            subset = data.take(fraction, seed=seed)
            config = TrainConfig(**{**config_base, "epochs": p.epochs, "seed": seed})
            tuned = copy.deepcopy(start)
            fine_tune = TrainConfig(**{**config.to_json(), "lr": config.lr * p.finetune_lr_scale})
            fit(tuned, subset, fine_tune, desc="fine-tune")
            scratch = build_model(
                spec.name, spec.input_shape, spec.n_classes, spec.params, seed=seed
            )
            fit(scratch, subset, config, desc="scratch")
            row = {
                "fraction": fraction,
                "samples": len(subset),
                "stolen_accuracy": accuracy(start, test),
                "finetuned_accuracy": accuracy(tuned, test),
                "scratch_accuracy": accuracy(scratch, test),
            }
            if victim is not None:
                row["finetuned_fidelity"] = agreement(tuned, victim, test.x)
                row["scratch_fidelity"] = agreement(scratch, victim, test.x)
            rows.append(row)
        return rows


register(
    "attacks",
    "direct-stealing",
    DirectStealingParams,
    "fine-tune a stolen (partial) copy vs train from scratch",
)(DirectStealing)
