"""Distillation into a fresh model (Hinton et al.): the attacker labels its own data with
the model's softened outputs (``soft``, temperature ``temperature``) or its top-1 labels
(``labels``) and trains a new model of ``arch`` from scratch. Strength = epochs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import ARCHITECTURES, TrainConfig, build_model, fit_arrays, predict_logits


@dataclass(frozen=True)
class DistillParams(RemovalParams):
    targets: Literal["soft", "labels"] = "soft"
    temperature: float = 4.0
    arch: str = "same"
    strengths: list[float] = field(default_factory=lambda: [10.0, 30.0, 60.0])

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0 or any(s < 1 for s in self.strengths):
            raise InputError("temperature must be positive and epochs at least 1")
        if self.arch != "same" and self.arch not in ARCHITECTURES:
            raise InputError(f"arch must be 'same' or one of {sorted(ARCHITECTURES)}")


class Distill(RemovalAttack):
    kind = "distill"
    strength_name = "epochs"

    def _attack(self, model, data, strength, seed):
        p: DistillParams = self.params  # type: ignore[assignment]
        logits = predict_logits(model, data.x).astype(np.float64)
        if p.targets == "soft":
            targets = torch.softmax(torch.from_numpy(logits) / p.temperature, dim=1).numpy()
        else:
            targets = logits.argmax(axis=1)
        spec = model.spec
        arch = spec.name if p.arch == "same" else p.arch
        params = spec.params if p.arch == "same" else None
        student = build_model(arch, spec.input_shape, spec.n_classes, params, seed=seed)
        config = TrainConfig(epochs=int(strength), seed=seed, **_lr(arch))
        fit_arrays(
            student,
            data.x,
            targets.astype(np.float32 if targets.ndim == 2 else np.int64),
            config,
            desc="distill",
        )
        return student


def _lr(arch: str) -> dict:
    defaults = ARCHITECTURES[arch].train_defaults
    return {k: defaults[k] for k in ("lr", "weight_decay", "grad_clip") if k in defaults}


register(
    "attacks",
    "distill",
    DistillParams,
    "distil into a fresh model from soft outputs or top-1 labels",
)(Distill)
