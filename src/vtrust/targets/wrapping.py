"""The user's own torch module or prediction function as a target."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vtrust.targets.base import InputSpec, Target, from_callable, from_module


def _spec(input_shape, layout, value_range, mean, std) -> InputSpec:
    return InputSpec(tuple(input_shape), layout, value_range, mean, std)


def wrap(
    module: nn.Module,
    *,
    input_shape: Sequence[int],
    n_classes: int | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    layout: str = "NCHW",
    value_range: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    outputs: str = "auto",
    class_names: Sequence[str] | None = None,
) -> Target:
    """Any torch module as a white-box target.

    vtrust hands every model canonical images, ``float32`` (N, C, H, W) in [0, 1] of
    ``input_shape`` (C, H, W); ``value_range``, ``mean``/``std`` and ``layout`` say what
    the module expects instead, and ``preprocess`` (differentiable, on tensors) runs after
    them. The module's outputs are logits, or probabilities (detected, or as ``outputs``
    says). ``n_classes`` is checked against the module's outputs.
    """
    return from_module(
        module,
        _spec(input_shape, layout, value_range, mean, std),
        preprocess=preprocess,
        outputs=outputs,
        class_names=class_names,
        n_classes=n_classes,
        provenance={"format": "python", "module": type(module).__qualname__},
    )


def wrap_predict(
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    input_shape: Sequence[int],
    n_classes: int | None = None,
    layout: str = "NCHW",
    value_range: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    outputs: str = "auto",
    class_names: Sequence[str] | None = None,
    batch_size: int = 256,
) -> Target:
    """Any prediction function as a black-box target (like ART's ``BlackBoxClassifier``).

    ``fn`` maps a ``float32`` batch in the model's own input form (see :func:`wrap`) to
    outputs (N, K): logits or probabilities. It is called with at most ``batch_size``
    inputs at a time.
    """
    target = from_callable(
        fn,
        _spec(input_shape, layout, value_range, mean, std),
        outputs=outputs,
        class_names=class_names,
        batch_size=batch_size,
    )
    if n_classes is not None and target.n_classes != n_classes:
        from vtrust.errors import InputError

        raise InputError(f"the function returns {target.n_classes} outputs, not {n_classes}")
    return target
