"""The model under audit: a :class:`Target`.

A target is what every vtrust operation takes, whatever format the model came in:

* a **black-box** part, always there: :meth:`Target.predict_proba` maps vtrust's canonical
  images — ``float32`` (N, C, H, W) in [0, 1] — to class probabilities, in batches;
* a **white-box** part when the format allows it: :attr:`Target.module`, a torch module
  that takes the same canonical images and returns logits (preprocessing included), so
  removal attacks, static watermarks and embedding can change its weights;
* an :class:`InputSpec` — how canonical images become the model's own input (value range,
  per-channel normalisation, NCHW or NHWC layout);
* the number of classes, optional class names, and provenance (format, file SHA-256,
  runtime, converter and its measured agreement).

Operations that need weights call :meth:`Target.require_module`, which raises
:class:`~vtrust.errors.BlackBoxOnly` naming the operation and why the target has none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from vtrust.errors import BlackBoxOnly, InputError

LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class InputSpec:
    """How vtrust's canonical images become the model's input.

    Canonical images are ``float32`` (N, C, H, W) in [0, 1]; the model receives
    ``(lo + x · (hi − lo) − mean[c]) / std[c]`` in ``layout``.

    Attributes:
        shape: (C, H, W) of one canonical image.
        layout: the model's layout, ``NCHW`` (torch) or ``NHWC`` (TFLite, Keras).
        value_range: (lo, hi) that [0, 1] maps to, e.g. (0, 255).
        mean, std: per-channel (or one shared) normalisation after scaling; None: none.
    """

    shape: tuple[int, int, int]
    layout: str = "NCHW"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"input shape must be (C, H, W) with positive sizes, got {shape}")
        object.__setattr__(self, "shape", shape)
        if self.layout not in LAYOUTS:
            raise InputError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        lo, hi = (float(v) for v in self.value_range)
        if not (np.isfinite([lo, hi]).all() and hi > lo):
            raise InputError(f"value range must be finite with lo < hi, got {self.value_range}")
        object.__setattr__(self, "value_range", (lo, hi))
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is None:
                continue
            values = tuple(float(v) for v in values)
            if len(values) not in (1, shape[0]) or not np.isfinite(values).all():
                raise InputError(f"{name} needs 1 or {shape[0]} finite values, got {values}")
            if name == "std" and min(values) <= 0:
                raise InputError(f"std must be positive, got {values}")
            object.__setattr__(self, name, values)

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """One input as the model sees it (C, H, W) or (H, W, C)."""
        c, h, w = self.shape
        return (c, h, w) if self.layout == "NCHW" else (h, w, c)

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``scale`` and ``offset`` with model_x = scale · x + offset (NCHW)."""
        cached = self.__dict__.get("_affine_cache")
        if cached is None:
            lo, hi = self.value_range
            channels = self.shape[0]
            mean = np.broadcast_to(np.asarray(self.mean or (0.0,), np.float64), (channels,))
            std = np.broadcast_to(np.asarray(self.std or (1.0,), np.float64), (channels,))
            scale = ((hi - lo) / std).astype(np.float32)[None, :, None, None]
            offset = ((lo - mean) / std).astype(np.float32)[None, :, None, None]
            cached = (scale, offset, bool((scale == 1).all() and (offset == 0).all()))
            object.__setattr__(self, "_affine_cache", cached)
        return cached[0], cached[1]

    @property
    def is_identity(self) -> bool:
        """Whether the model takes canonical images unchanged."""
        return self.layout == "NCHW" and self._plain_values

    @property
    def _plain_values(self) -> bool:
        self._affine()
        return self.__dict__["_affine_cache"][2]

    def to_model(self, x: np.ndarray) -> np.ndarray:
        """Canonical images (N, C, H, W) → the model's ``float32`` input."""
        if self._plain_values:
            out = np.asarray(x, np.float32)
        else:
            scale, offset = self._affine()
            out = x.astype(np.float32, copy=True)
            out *= scale
            out += offset
        if self.layout == "NHWC":
            return np.ascontiguousarray(out.transpose(0, 2, 3, 1))
        return np.ascontiguousarray(out)

    def to_model_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`to_model` for a tensor, differentiable (for white-box modules)."""
        scale, offset = (torch.from_numpy(a) for a in self._affine())
        out = x * scale + offset
        return out.permute(0, 2, 3, 1) if self.layout == "NHWC" else out

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "layout": self.layout,
            "value_range": list(self.value_range),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
        }


class Preprocessed(nn.Module):
    """A user's module behind an :class:`InputSpec` (and an optional differentiable
    ``preprocess``), taking canonical images; ``log_outputs`` turns a module that ends in
    a softmax into one returning logits (log-probabilities)."""

    def __init__(
        self,
        inner: nn.Module,
        spec: InputSpec,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        log_outputs: bool = False,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.spec = spec
        self.preprocess = preprocess
        self.log_outputs = log_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spec.is_identity:
            x = self.spec.to_model_tensor(x)
        if self.preprocess is not None:
            x = self.preprocess(x)
        out = self.inner(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return torch.log(out.clamp_min(1e-12)) if self.log_outputs else out


def looks_like_probabilities(outputs: np.ndarray, atol: float = 1e-3) -> bool:
    """Whether every row is a probability vector (non-negative, summing to 1 within
    ``atol``; quantised outputs need a looser one): the model ends in a softmax, so its
    outputs must not be soft-maxed again."""
    return bool(
        outputs.ndim == 2
        and np.isfinite(outputs).all()
        and (outputs >= -1e-6).all()
        and np.allclose(outputs.sum(axis=1), 1.0, atol=atol)
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def normalise_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Rows clipped at 0 and scaled to sum to 1 (a row of zeros becomes uniform)."""
    p = np.clip(outputs, 0.0, None).astype(np.float64)
    sums = p.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        p[(sums <= 0)[:, 0]] = 1.0
        sums = p.sum(axis=1, keepdims=True)
    return p / sums


BatchFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Target:
    """A model under audit; see the module docstring.

    Attributes:
        spec: how canonical images become the model's input.
        n_classes: number of classes the model outputs.
        run: the black box: the model's *own* input batch → its raw outputs (N, K).
        outputs: ``"logits"`` (soft-maxed here) or ``"probabilities"``.
        module: the white-box module on canonical images (logits), or None.
        provenance: format, file SHA-256, runtime, converter …, for reports.
        class_names: optional names of the classes.
        batch_size: the largest batch handed to ``run``.
        white_box_reason: why there is no module (shown when one is required).
        fixed_batch: the only batch size ``run`` accepts (a model exported with a static
            batch); shorter batches are padded with zeros and the padding dropped.
    """

    spec: InputSpec
    n_classes: int
    run: BatchFn
    outputs: str = "logits"
    module: nn.Module | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    class_names: Sequence[str] | None = None
    batch_size: int = 256
    white_box_reason: str = "the format gives no weights"
    fixed_batch: int | None = None

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise InputError(f"a classifier needs at least 2 classes, got {self.n_classes}")
        if self.outputs not in ("logits", "probabilities"):
            raise InputError(f"outputs must be logits or probabilities, got {self.outputs!r}")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise InputError(f"{len(self.class_names)} class names for {self.n_classes} classes")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one canonical image."""
        return self.spec.shape

    @property
    def white_box(self) -> bool:
        return self.module is not None

    @property
    def format(self) -> str:
        return str(self.provenance.get("format", "python"))

    def require_module(self, operation: str) -> nn.Module:
        """The white-box module, or :class:`BlackBoxOnly` saying ``operation`` needs it."""
        if self.module is None:
            raise BlackBoxOnly(
                f"{operation} needs white-box weights, but this {self.format} target is a "
                f"black box ({self.white_box_reason})"
            )
        return self.module

    def check_images(self, x: np.ndarray) -> np.ndarray:
        """``x`` as canonical ``float32`` images of this target's shape, or InputError."""
        arr = np.asarray(x)
        if arr.ndim != 4 or tuple(arr.shape[1:]) != self.input_shape:
            raise InputError(
                f"inputs must have shape (N, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(arr.shape)}"
            )
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"inputs must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise InputError("inputs contain NaN or infinite values")
        return arr

    def raw_outputs(self, x: np.ndarray, *, checked: bool = False) -> np.ndarray:
        """The black box's raw outputs (N, n_classes) for canonical images ``x``
        (``checked``: ``x`` already passed :meth:`check_images`)."""
        arr = x if checked else self.check_images(x)
        step = self.fixed_batch or self.batch_size
        parts = []
        for start in range(0, len(arr), step):
            chunk = self.spec.to_model(arr[start : start + step])
            n = len(chunk)
            if self.fixed_batch is not None and n < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - n, *chunk.shape[1:]), np.float32)
                chunk = np.concatenate([chunk, pad])
            out = np.asarray(self.run(chunk))
            out = out.reshape(len(out), -1)[:n] if out.ndim >= 1 and len(out) else out
            if out.shape != (n, self.n_classes):
                raise InputError(
                    f"the model returned shape {out.shape} for a batch of {n} "
                    f"({self.n_classes} classes expected)"
                )
            if not np.isfinite(out).all():
                bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
                raise InputError(
                    f"the model's outputs are not finite for {len(bad)} of {n} inputs "
                    f"(first: row {start + int(bad[0])}): values far outside its input range"
                )
            parts.append(out)
        if not parts:
            return np.zeros((0, self.n_classes))
        return np.concatenate(parts)

    def predict_proba(self, x: np.ndarray, *, checked: bool = False) -> np.ndarray:
        """Class probabilities (N, n_classes) as ``float64`` rows summing to 1."""
        return self.probabilities(self.raw_outputs(x, checked=checked))

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        """Raw outputs of this black box as probability rows."""
        if self.outputs == "probabilities":
            return normalise_probabilities(out)
        return softmax(out)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Top-1 labels (N,) ``int64``."""
        return self.raw_outputs(x).argmax(axis=1).astype(np.int64)

    def with_module(self, module: nn.Module) -> Target:
        """The same target with a changed white-box module answering its black box (a
        removal attack's or an embedding's result)."""
        return replace(
            self,
            module=module,
            run=module_runner(module, InputSpec(self.spec.shape)),
            spec=InputSpec(self.spec.shape),
            outputs="logits",
            provenance={**self.provenance, "modified": True},
        )

    def describe(self) -> dict[str, Any]:
        """What a report says about the target."""
        return {
            **{k: v for k, v in self.provenance.items() if k != "path" or v},
            "input": self.spec.to_json(),
            "n_classes": self.n_classes,
            "class_names": None if self.class_names is None else list(self.class_names),
            "outputs": self.outputs,
            "white_box": self.white_box,
        }


def module_runner(module: nn.Module, spec: InputSpec) -> BatchFn:
    """A black box evaluating ``module`` (on the model input ``spec`` produces) in eval
    mode without gradients; ``spec`` identity: the module takes canonical images."""

    def run(batch: np.ndarray) -> np.ndarray:
        module.eval()
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().numpy()

    return run


def probe_outputs(run: BatchFn, spec: InputSpec, batch: int = 4) -> np.ndarray:
    """The raw outputs for ``batch`` fixed random images (not secret: a probe of the
    output shape and kind)."""
    probe = np.random.default_rng(0).uniform(size=(batch, *spec.shape)).astype(np.float32)
    out = np.asarray(run(spec.to_model(probe)))
    if out.ndim < 2 or out.shape[0] != batch:
        raise InputError(
            f"the model returned shape {out.shape} for a batch of {batch} (need (N, K))"
        )
    return out.reshape(batch, -1)


def from_module(
    module: nn.Module,
    spec: InputSpec,
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    outputs: str = "auto",
    provenance: dict[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    n_classes: int | None = None,
) -> Target:
    """A white-box target from a torch module taking the model input ``spec`` describes
    (its outputs logits or, detected by probing, probabilities)."""
    module.eval()
    plain = Preprocessed(module, spec, preprocess)
    canonical = InputSpec(spec.shape)
    with torch.no_grad():
        out = probe_outputs(module_runner(plain, canonical), canonical)
    kind = _output_kind(out, outputs)
    white = plain if kind == "logits" else Preprocessed(module, spec, preprocess, log_outputs=True)
    found = out.shape[1]
    if n_classes is not None and n_classes != found:
        raise InputError(f"the model has {found} outputs, not {n_classes} classes")
    return Target(
        spec=canonical,
        n_classes=found,
        run=module_runner(white, canonical),
        outputs="logits",
        module=white,
        provenance={
            "format": "python",
            **(provenance or {}),
            "input_spec": spec.to_json(),
            "model_outputs": kind,
        },
        class_names=class_names,
    )


def _output_kind(out: np.ndarray, outputs: str, atol: float = 1e-3) -> str:
    if outputs == "auto":
        return "probabilities" if looks_like_probabilities(out, atol) else "logits"
    if outputs not in ("logits", "probabilities"):
        raise InputError(f"outputs must be auto, logits or probabilities, got {outputs!r}")
    return outputs


def from_callable(
    fn: BatchFn,
    spec: InputSpec,
    *,
    outputs: str = "auto",
    provenance: dict[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int = 256,
    white_box_reason: str = "only a prediction function was given",
    fixed_batch: int | None = None,
    probability_atol: float = 1e-3,
) -> Target:
    """A black-box target from a function of model-input batches to outputs (N, K)."""
    out = probe_outputs(fn, spec, fixed_batch or 4)
    return Target(
        spec=spec,
        n_classes=out.shape[1],
        run=fn,
        outputs=_output_kind(out, outputs, probability_atol),
        fixed_batch=fixed_batch,
        provenance={"format": "python", **(provenance or {})},
        class_names=class_names,
        batch_size=batch_size,
        white_box_reason=white_box_reason,
    )


def white_box(model: Target | nn.Module, operation: str) -> nn.Module:
    """The torch module of ``model``: itself, or a target's white box (BlackBoxOnly,
    naming ``operation``, for a black box)."""
    return model if isinstance(model, nn.Module) else model.require_module(operation)


def as_target(model: Target | nn.Module, input_shape: Sequence[int] | None = None) -> Target:
    """``model`` itself if it is a target, else a white-box target of a torch module that
    takes canonical images of ``input_shape`` (a zoo model knows its own)."""
    if isinstance(model, Target):
        return model
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a vtrust Target or a torch module, got {type(model).__name__}")
    spec_shape = getattr(getattr(model, "spec", None), "input_shape", None)
    shape = tuple(input_shape) if input_shape is not None else spec_shape
    if shape is None:
        raise InputError("a torch module needs its input shape (C, H, W)")
    canonical = InputSpec(tuple(shape))
    run = module_runner(model, canonical)
    out = probe_outputs(run, canonical)
    return Target(
        spec=canonical,
        n_classes=out.shape[1],
        run=run,
        module=model,
        provenance={"format": "vtrust" if spec_shape is not None else "python"},
    )
