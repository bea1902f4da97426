"""LiteRT / TFLite targets (``.tflite``, what edge devices run), float or integer, as
black boxes through ``ai-edge-litert``.

The interpreter's own quantisation parameters are applied: a float image becomes
``round(x / scale) + zero_point`` clamped to the input type's range, and integer outputs
are dequantised as ``(q − zero_point) · scale``. The batch dimension is resized to the
query batch when the model allows it, else queries run one batch of the stored size at a
time. A flatbuffer holds no trainable weights vtrust could change, so the target is a
black box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtrust._extras import first_line, require
from vtrust.errors import ModelFileError
from vtrust.targets.base import InputSpec, Target, from_callable
from vtrust.targets.onnx_files import infer_spec


class _Interpreter:
    """One LiteRT interpreter, its input resized to the batch of each call."""

    def __init__(self, raw: bytes, source: str) -> None:
        litert = require("ai_edge_litert.interpreter", "litert")
        try:
            self.interpreter = litert.Interpreter(model_content=raw, num_threads=1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{source}: LiteRT cannot load it ({first_line(exc)})") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(
                f"{source}: the model has {len(inputs)} inputs; one image input is expected"
            )
        self.input = inputs[0]
        self.output = self.interpreter.get_output_details()[0]
        self.stored_batch = int(self.input["shape"][0])
        self.batch = self.stored_batch
        self.resizable = True

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def _resize(self, n: int) -> bool:
        if n == self.batch:
            return True
        if not self.resizable:
            return False
        try:
            self.interpreter.resize_tensor_input(self.input["index"], [n, *self.dims[1:]])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self.resizable = False
            self.interpreter.resize_tensor_input(self.input["index"], list(self.dims))
            self.interpreter.allocate_tensors()
            return False
        self.batch = n
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        return True

    def quantise(self, batch: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self.input["dtype"])
        scale, zero = self.input["quantization"]
        if dtype.kind == "f":
            return batch.astype(dtype, copy=False)
        if not scale:
            raise ModelFileError("the integer input has no quantisation parameters")
        info = np.iinfo(dtype)
        q = batch * np.float32(1.0 / scale)
        q += np.float32(zero)
        np.rint(q, out=q)
        np.clip(q, info.min, info.max, out=q)
        return q.astype(dtype)

    def dequantise(self, out: np.ndarray) -> np.ndarray:
        scale, zero = self.output["quantization"]
        if np.dtype(self.output["dtype"]).kind == "f" or not scale:
            return out.astype(np.float32)
        return ((out.astype(np.float32) - zero) * scale).astype(np.float32)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        if self._resize(n):
            return self._invoke(batch)
        parts = []  # a fixed batch size: run it as many times as needed
        for start in range(0, n, self.batch):
            chunk = batch[start : start + self.batch]
            pad = self.batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            parts.append(self._invoke(chunk)[: self.batch - pad])
        return np.concatenate(parts)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], self.quantise(batch))
        self.interpreter.invoke()
        return self.dequantise(self.interpreter.get_tensor(self.output["index"]))


def load_tflite(raw: bytes, spec: InputSpec | None, source: str, **kw: Any) -> Target:
    """A black-box target from a ``.tflite`` flatbuffer."""
    interpreter = _Interpreter(raw, source)
    spec = infer_spec(interpreter.dims, spec, source)
    integer_out = np.dtype(interpreter.output["dtype"]).kind != "f"
    in_type = np.dtype(interpreter.input["dtype"]).name
    out_type = np.dtype(interpreter.output["dtype"]).name
    litert = require("ai_edge_litert", "litert")
    try:
        return from_callable(
            interpreter,
            spec,
            outputs=kw.get("outputs", "auto"),
            provenance={
                **kw.get("provenance", {}),
                "input_type": in_type,
                "output_type": out_type,
                "runtime": f"ai-edge-litert {getattr(litert, '__version__', '?')}",
            },
            class_names=kw.get("class_names"),
            probability_atol=0.05 if integer_out else 1e-3,
            white_box_reason="a .tflite flatbuffer is run by LiteRT; vtrust cannot train it",
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source}: LiteRT cannot run it ({first_line(exc)})") from None
