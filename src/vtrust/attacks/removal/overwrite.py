"""Watermark overwriting: the attacker embeds watermarks of its own, with random keys,
in every linear and convolutional layer by fine-tuning on its data (the attacker knows
the method, not the owner's key or layer). Strength = the regularizer weight λ."""

from __future__ import annotations

from dataclasses import dataclass, field

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams, weight_tensors
from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.models import TrainConfig, fit
from vtrust.watermark.static import StaticWatermark, new_static_key


@dataclass(frozen=True)
class OverwriteParams(RemovalParams):
    strengths: list[float] = field(default_factory=lambda: [0.05, 0.2, 1.0])
    bits: int = 256
    epochs: int = 5
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bits < 1 or self.epochs < 1 or self.lr <= 0 or any(s <= 0 for s in self.strengths):
            raise InputError("bits, epochs, lr and strengths must be positive")


class Overwrite(RemovalAttack):
    kind = "overwrite"
    strength_name = "attacker's λ"

    def _attack(self, model, data, strength, seed):
        p: OverwriteParams = self.params  # type: ignore[assignment]
        penalties = []
        for i, (name, weight) in enumerate(weight_tensors(model)):
            layer = name.removesuffix(".weight")
            key = new_static_key(
                model,
                bits=min(p.bits, weight.numel()),
                layer=layer,
                strength=strength,
                seed=seed * 1000 + i + 7,
            )
            penalties.append(StaticWatermark(key).penalty())
        config = TrainConfig(epochs=p.epochs, lr=p.lr, cosine=False, seed=seed)
        fit(model, data, config, penalties=penalties, desc="overwrite")
        return model


register(
    "attacks", "overwrite", OverwriteParams, "embed the attacker's own watermarks in every layer"
)(Overwrite)
