"""Weight quantization as a removal attack: every weight tensor rounded to a symmetric
uniform grid of ``bits`` bits (scale = max |w| / (2^(bits-1) − 1)), then dequantized.
Strength = bits (fewer is stronger)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vtrust.attacks.removal.common import RemovalAttack, RemovalParams, weight_tensors
from vtrust.catalog import register
from vtrust.errors import InputError


@dataclass(frozen=True)
class QuantizeParams(RemovalParams):
    strengths: list[float] = field(default_factory=lambda: [8.0, 6.0, 4.0, 3.0, 2.0])

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(s < 2 or s != int(s) for s in self.strengths):
            raise InputError("bit widths must be whole numbers of at least 2")


def quantize_weights(model, bits: int):
    """Round every weight tensor to ``bits``-bit symmetric levels (in place)."""
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for _, w in weight_tensors(model):
            scale = w.abs().max() / levels
            if scale > 0:
                w.copy_(torch.round(w / scale) * scale)
    return model


class Quantize(RemovalAttack):
    kind = "quantize"
    strength_name = "bits"

    def _attack(self, model, data, strength, seed):
        return quantize_weights(model, int(strength))


register("attacks", "quantize", QuantizeParams, "round weights to a b-bit uniform grid")(Quantize)
