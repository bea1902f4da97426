"""ONNX targets: the black box is onnxruntime (CPU); the white box is the graph
converted to torch (:mod:`vtrust.targets.onnx_torch`), kept only once it agrees with
onnxruntime on the user's data (:func:`check_conversion`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vtrust._extras import first_line, require
from vtrust.errors import ModelFileError
from vtrust.targets.base import InputSpec, Preprocessed, Target, from_callable, module_runner

CONVERSION_TOLERANCE = 1e-3  # max |Δ| of outputs, relative to the largest output


def graph_input_shape(dims: list[Any]) -> tuple[int | None, ...]:
    """An input's dimensions, None where symbolic."""
    return tuple(d if isinstance(d, int) and d > 0 else None for d in dims)


def infer_spec(dims: tuple[int | None, ...], given: InputSpec | None, source: str) -> InputSpec:
    """The input spec from a 4-d image input (N, C, H, W) or (N, H, W, C), unless given."""
    if len(dims) != 4:
        raise ModelFileError(
            f"{source}: the model's input has rank {len(dims)}; vtrust "
            "targets take image batches of rank 4"
        )
    if given is not None:
        if given.model_shape != tuple(
            d if d is not None else s for d, s in zip(dims[1:], given.model_shape, strict=True)
        ):
            raise ModelFileError(
                f"{source}: the model takes {dims[1:]}, not the given "
                f"{given.model_shape} ({given.layout})"
            )
        return given
    _, a, b, c = dims
    if a in (1, 3) and None not in (b, c):
        return InputSpec((a, b, c), "NCHW")
    if c in (1, 3) and None not in (a, b):
        return InputSpec((c, a, b), "NHWC")
    raise ModelFileError(
        f"{source}: cannot tell the layout of input {dims}; pass --input-shape C,H,W and --layout"
    )


class SessionRunner:
    """An onnxruntime session as a black box: a model-input batch → its first output."""

    def __init__(self, session: Any, input_name: str, output_name: str, dtype: Any) -> None:
        self.session, self.input_name, self.output_name = session, input_name, output_name
        self.dtype = dtype

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: batch.astype(self.dtype, copy=False)}
        return self.session.run([self.output_name], feed)[0]


def load_onnx(raw: bytes, spec: InputSpec | None, source: str, **kw: Any) -> Target:
    """A target from ONNX bytes: onnxruntime answers; the torch conversion, when the
    graph allows it, is the white box (checked later against onnxruntime)."""
    onnx = require("onnx", "onnx")
    ort = require("onnxruntime", "onnx")
    try:
        model = onnx.load_model_from_string(raw)
        if _has_external_data(model):  # weights beside the graph, e.g. model.onnx.data
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(Path(source).parent))
            raw = model.SerializeToString()
            kw.setdefault("provenance", {})["sha256_with_external_data"] = hashlib.sha256(
                raw
            ).hexdigest()
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, missing external data …
        raise ModelFileError(f"{source}: not a valid ONNX model ({first_line(exc)})") from None
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(raw, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFileError(f"{source}: onnxruntime cannot load it ({first_line(exc)})") from None
    (first, *rest) = session.get_inputs()
    if rest:
        raise ModelFileError(
            f"{source}: the model has {1 + len(rest)} inputs; one image input is expected"
        )
    dims = graph_input_shape(list(first.shape))
    spec = infer_spec(dims, spec, source)
    name, output = first.name, session.get_outputs()[0].name
    dtype = np.float16 if "float16" in first.type else np.float32
    if "float" not in first.type:
        raise ModelFileError(f"{source}: input type {first.type} (a float image input expected)")

    run = SessionRunner(session, name, output, dtype)

    try:
        target = from_callable(
            run,
            spec,
            outputs=kw.get("outputs", "auto"),
            fixed_batch=dims[0],
            provenance={**kw.get("provenance", {}), "runtime": f"onnxruntime {ort.__version__}"},
            class_names=kw.get("class_names"),
        )
    except Exception as exc:  # the session's own errors on a bad graph
        raise ModelFileError(f"{source}: onnxruntime cannot run it ({first_line(exc)})") from None
    return _attach_white_box(target, model)


def _has_external_data(model: Any) -> bool:
    from onnx import TensorProto

    return any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)


def _attach_white_box(target: Target, model: Any) -> Target:
    from vtrust.targets.onnx_torch import OnnxModule, UnsupportedGraph

    try:
        inner = OnnxModule(model)
    except UnsupportedGraph as exc:
        target.white_box_reason = f"the ONNX graph has no torch conversion: {exc}"
        return target
    spec = InputSpec(
        target.spec.shape,
        target.spec.layout,
        target.spec.value_range,
        target.spec.mean,
        target.spec.std,
    )
    target.module = Preprocessed(inner, spec, log_outputs=target.outputs == "probabilities")
    target.provenance["converter"] = "vtrust.targets.onnx_torch"
    target.provenance["conversion_checked"] = False
    return target


def check_conversion(target: Target, x: np.ndarray, tolerance: float = CONVERSION_TOLERANCE):
    """Compare the converted module with onnxruntime on ``x`` (the user's images); record
    max |Δ| in the provenance, and drop the module (black box only) above ``tolerance``
    relative to the largest output."""
    if target.module is None or target.provenance.get("converter") is None:
        return target
    sample = x[:256]
    reference = target.raw_outputs(sample)
    converted = module_runner(target.module, InputSpec(target.spec.shape))(sample)
    if target.outputs == "probabilities":
        converted = np.exp(converted)
    delta = float(np.abs(converted - reference).max()) if len(sample) else 0.0
    scale = max(1.0, float(np.abs(reference).max())) if len(sample) else 1.0
    target.provenance.update(
        conversion_checked=True, conversion_max_abs_diff=delta, conversion_samples=len(sample)
    )
    if not np.isfinite(delta) or delta > tolerance * scale:
        target.module = None
        target.white_box_reason = (
            f"its torch conversion differs from onnxruntime by "
            f"{delta:.3g} (> {tolerance:g}) on your data"
        )
    return target
