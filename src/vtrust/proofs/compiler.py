"""Circuit descriptions from the catalog (``circuits/*.toml``) and the compiler that
applies one to a trained model."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vtrust.catalog import register
from vtrust.errors import CircuitError, InputError
from vtrust.proofs.quantize import CompiledNetwork, QuantSpec, compile_network


@dataclass(frozen=True)
class CircuitParams:
    """A circuit description.

    Attributes:
        arch: the model architecture it applies to (``quad``).
        input_bits / weight_bits: quantisation bit widths.
        batch: inputs per proof (padded to a power of two).
        finetune_epochs: quantisation-aware fine-tuning epochs used by ``vtrust
            prove --finetune`` and the experiments (0: quantise as trained).
        input_shape: the (C, H, W) the circuit is for; empty: any.
    """

    arch: str = "quad"
    input_bits: int = 3
    weight_bits: int = 4
    batch: int = 64
    finetune_epochs: int = 10
    input_shape: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.input_shape and (len(self.input_shape) != 3 or min(self.input_shape) < 1):
            raise InputError(f"input_shape must be [C, H, W], got {self.input_shape}")
        QuantSpec(self.input_bits, self.weight_bits)
        if self.batch < 1 or self.batch > 1 << 16:
            raise InputError(f"batch must be in 1..65536, got {self.batch}")
        if self.finetune_epochs < 0:
            raise InputError("finetune_epochs must be non-negative")

    @property
    def spec(self) -> QuantSpec:
        return QuantSpec(self.input_bits, self.weight_bits)


class CircuitCompiler:
    """Compiles models of ``params.arch`` with the described bit widths and batch."""

    def __init__(self, params: CircuitParams = CircuitParams()) -> None:
        self.params = params

    def compile(self, model: nn.Module, input_shape: tuple[int, int, int]) -> CompiledNetwork:
        arch = getattr(getattr(model, "spec", None), "name", None)
        if arch != self.params.arch:
            raise CircuitError(f"this circuit is for {self.params.arch!r} models, not {arch!r}")
        if self.params.input_shape and tuple(self.params.input_shape) != tuple(input_shape):
            raise CircuitError(
                f"this circuit is for inputs of shape {tuple(self.params.input_shape)}, "
                f"the model takes {tuple(input_shape)}"
            )
        return compile_network(model, input_shape, self.params.spec, self.params.batch)


register("circuits", "quantized", CircuitParams, "quantised polynomial network")(CircuitCompiler)
