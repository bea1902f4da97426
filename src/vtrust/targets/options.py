"""What the user tells vtrust about a model file (:class:`LoadOptions`), and reading one;
torch-free, so commands can parse options and read files before deciding to load torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vtrust.errors import ModelFileError

if TYPE_CHECKING:
    from vtrust.targets.base import InputSpec


@dataclass(frozen=True)
class LoadOptions:
    """What a model file may not record about its input, given by the user.

    Attributes:
        input_shape: (C, H, W) of one image (TorchScript and state dicts record none;
            by default the data's).
        layout: NCHW or NHWC (by default read off the file, else NCHW).
        value_range: what [0, 1] pixels become, e.g. (0, 255).
        mean, std: per-channel normalisation after scaling.
        outputs: ``auto`` (probabilities if every probe row is one), ``logits`` or
            ``probabilities``.
        arch_module: ``pkg.module:Class`` for a state dict.
        class_names: names of the classes, in label order.
    """

    input_shape: tuple[int, int, int] | None = None
    layout: str | None = None
    value_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    outputs: str = "auto"
    arch_module: str | None = None
    class_names: Sequence[str] | None = None

    def spec(self, shape: tuple[int, int, int] | None = None) -> InputSpec | None:
        """The input spec these options give (with ``shape`` if none was given)."""
        from vtrust.targets.base import InputSpec

        shape = self.input_shape or shape
        if shape is None:
            return None
        return InputSpec(
            shape, self.layout or "NCHW", self.value_range or (0.0, 1.0), self.mean, self.std
        )

    @property
    def given_spec(self) -> bool:
        return any(
            v is not None
            for v in (self.input_shape, self.layout, self.value_range, self.mean, self.std)
        )


def read_model_bytes(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {p}: {exc.strerror or exc}") from None
