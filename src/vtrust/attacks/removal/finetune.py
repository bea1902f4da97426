"""Fine-tuning removal attacks (Adi et al., USENIX Security 2018).

* ``ftll``: fine-tune the last layer only;
* ``ftal``: fine-tune all layers;
* ``rtll``: re-initialise the last layer, then train only it;
* ``rtal``: re-initialise the last layer, then train all layers.

Strength = epochs on the attacker's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams, head_of
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import TrainConfig, fit


@dataclass(frozen=True)
class FineTuneParams(RemovalParams):
    mode: Literal["ftll", "ftal", "rtll", "rtal"] = "ftal"
    strengths: list[float] = field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0])
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr <= 0 or any(s < 0 for s in self.strengths):
            raise InputError("lr must be positive and epochs non-negative")


class FineTune(RemovalAttack):
    kind = "fine-tune"
    strength_name = "epochs"

    def _attack(self, model, data, strength, seed):
        p: FineTuneParams = self.params  # type: ignore[assignment]
        params = None  # ftal: every parameter
        if p.mode != "ftal":
            head = head_of(model, p.mode)
            if p.mode in ("rtll", "rtal"):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    head.reset_parameters()
            params = list(head.parameters()) if p.mode in ("ftll", "rtll") else None
        config = TrainConfig(epochs=int(round(strength)), lr=p.lr, cosine=False, seed=seed)
        fit(model, data, config, parameters=params, desc=p.mode)
        return model


register(
    "attacks", "fine-tune", FineTuneParams, "Adi et al.: FTLL / FTAL / RTLL / RTAL fine-tuning"
)(FineTune)
