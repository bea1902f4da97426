"""Exact import of a fully integer LiteRT / TFLite model (``.tflite``, int8 in and out)
into an :class:`~vtrust.proofs.int8.network.Int8Network`, so the device's own integer
computation is what the proof proves.

The flatbuffer is read with the schema ``ai-edge-litert`` ships. Supported is a chain
from the input: ``CONV_2D`` (int8 weights per tensor or per output channel, int32
biases, square strides, no dilation, VALID or symmetric SAME padding), ``MAX_POOL_2D``
(stride = filter, nothing padded), ``RESHAPE`` to (1, n) — a flatten; the side operations
(``SHAPE``, ``STRIDED_SLICE``, ``PACK``) that compute its shape are skipped —
``FULLY_CONNECTED`` (per tensor or per channel), with fused NONE / RELU / RELU6 /
RELU_N1_TO_1, and a final ``SOFTMAX`` (dropped: the proof's outputs are the last layer's
accumulators). Anything else is refused with :class:`~vtrust.errors.CircuitError`
naming the operator.

The arithmetic is TFLite's integer kernels', reproduced exactly:

* ``acc = Σ w·(x − z_in) + b`` — zero padding contributes nothing, as in TFLite's
  kernels, which skip positions outside the image;
* ``t = SaturatingRoundingDoublingHighMul(acc, M) = ⌊(M·acc + 2^30) / 2^31⌋`` and
  ``r = RoundingDivideByPOT(t, e)`` (half away from zero), with (M, −e) from
  ``QuantizeMultiplier(double(s_in)·double(s_w) / double(s_out))`` per channel;
* ``y = clamp(r + z_out, act_min, act_max)``, the activation range from the fused
  activation as ``CalculateActivationRangeQuantized`` computes it.

A per-channel ``FULLY_CONNECTED`` rounds otherwise, and differently per kernel family
(measured against LiteRT 2.3 on the fixtures, random and real inputs, every value of
every layer): the reference kernels round once, ⌊(M·acc + 2^(30+e)) / 2^(31+e)⌋; the
optimised ones twice, the second time half up. ``import_tflite(..., kernels=)`` picks
the family to reproduce. XNNPACK (the interpreter's default delegate) requantises in
float32 and is reproduced by neither (about 0.4 % of the activations differ by one).

vtrust stores every value with its zero point subtracted (``y − z_out``, an 8-bit range
such as [0, 255]), so zero padding stays zero; the proved quotient is t's, and the
post-shift and clamp are a :class:`~vtrust.proofs.int8.network.Requant`'s
``post_shift`` and ``clamp``. Layouts are converted: NHWC convolution weights to
(O, C, kh, kw), and a flatten of (H, W, C) has its dense layer's columns permuted to
vtrust's (C, H, W) order. :func:`compare_with_litert` measures the claim on data; the
proof itself is about the last layer's int32 accumulators, from which the int8 logits
follow by :meth:`ImportedModel.int8_logits`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vtrust._extras import first_line, require
from vtrust.errors import CircuitError, ModelFileError
from vtrust.proofs.int8.network import (
    INT8_MAX,
    INT8_MIN,
    Conv,
    Dense,
    Flatten,
    Int8Network,
    MaxPool,
    Requant,
    requantise,
)
from vtrust.proofs.int8.ptq import QuantizedModel

#: the TFLite kernels' first rounding step: ⌊(M·acc + 2^30) / 2^31⌋
DOUBLING_HIGH_SHIFT = 31
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")  #: side computations of a reshape's shape
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
TYPE_INT8, TYPE_INT32 = 9, 2
#: the rounding of a per-channel FULLY_CONNECTED, measured per kernel family (see the module)
FC_ROUNDING = {"reference": "single", "builtin": "double-up"}


@dataclass(frozen=True)
class ImportedModel:
    """An imported model: the integer network (inside ``quantized``) and what relates
    it to the flatbuffer.

    Attributes:
        quantized: the network with the input's scale and zero point, and the output
            accumulators' scale per class.
        logits: the final requantisation (accumulators → the int8 logits the softmax
            reads, with their zero point subtracted) — a public function of the proved
            outputs.
        output_zero_point: the int8 logits' zero point.
        tensors: per integer layer that holds a TFLite tensor's values, that tensor's
            index and zero point (for :func:`compare_with_litert`).
        logits_tensor: the index of the int8 logits' tensor.
    """

    quantized: QuantizedModel
    logits: Requant
    output_zero_point: int
    tensors: dict[int, tuple[int, int]] = field(default_factory=dict)
    logits_tensor: int = -1

    @property
    def network(self) -> Int8Network:
        return self.quantized.network

    def int8_logits(self, accumulators: np.ndarray) -> np.ndarray:
        """The int8 logits TFLite computes from the output accumulators (N, classes)."""
        values = requantise(np.asarray(accumulators, dtype=np.int64), self.logits)
        return values.astype(np.int64) + self.output_zero_point


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: (M in [2^30, 2^31), shift) with
    M · 2^(shift − 31) ≈ ``real``; (0, 0) for 0."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound: half away from zero (q > 0)
    if fixed == 1 << 31:
        fixed, shift = fixed // 2, shift + 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def _round_away(value: np.float32) -> int:
    return int(np.sign(value) * np.floor(np.abs(value) + np.float32(0.5)))


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized`` for int8 outputs."""

    def quantize(value: float) -> int:
        return zero_point + _round_away(np.float32(value) / np.float32(scale))

    low, high = INT8_MIN, INT8_MAX
    if activation in (1, 3):
        low = max(low, quantize(0.0))
    if activation == 3:
        high = min(high, quantize(6.0))
    if activation == 2:
        low, high = max(low, quantize(-1.0)), min(high, quantize(1.0))
    return low, high


class _Graph:
    """The flatbuffer's one subgraph: tensors, constant buffers and named operators."""

    def __init__(self, raw: bytes, source: str) -> None:
        schema = require("ai_edge_litert.schema_py_generated", "litert")
        if len(raw) < 8 or raw[4:8] != b"TFL3":
            raise ModelFileError(f"{source}: not a TFLite flatbuffer")
        try:
            self.model = schema.ModelT.InitFromPackedBuf(raw, 0)
            names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
            self.ops = [
                (names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM"), c)
                for c in self.model.operatorCodes
            ]
        except Exception as exc:  # noqa: BLE001 — a malformed flatbuffer raises anything
            raise ModelFileError(f"{source}: not a TFLite flatbuffer ({first_line(exc)})") from None
        if len(self.model.subgraphs or []) != 1:
            raise CircuitError(f"{source}: one subgraph expected")
        self.graph = self.model.subgraphs[0]
        self.raw, self.source = raw, source

    def tensor(self, index: int):
        if not 0 <= index < len(self.graph.tensors):  # a negative index would wrap around
            raise IndexError(f"tensor index {index} out of range")
        return self.graph.tensors[index]

    def quantization(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.tensor(index).quantization
        if q is None or q.scale is None or q.zeroPoint is None or not len(q.scale):
            raise CircuitError(f"tensor {self.name(index)!r} is not quantised")
        return np.asarray(q.scale, dtype=np.float32), np.asarray(q.zeroPoint, dtype=np.int64)

    def activation(self, index: int) -> tuple[float, int]:
        """An int8 activation tensor's (scale, zero point)."""
        if self.tensor(index).type != TYPE_INT8:
            raise CircuitError(f"tensor {self.name(index)!r} is not int8")
        scale, zero = self.quantization(index)
        if len(scale) != 1:
            raise CircuitError(f"tensor {self.name(index)!r}: one scale per activation expected")
        return float(scale[0]), int(zero[0])

    def constant(self, index: int, dtype) -> np.ndarray:
        t = self.tensor(index)
        if not 0 <= t.buffer < len(self.model.buffers):
            raise IndexError(f"buffer index {t.buffer} out of range")
        buffer = self.model.buffers[t.buffer]
        data = buffer.data
        if (data is None or not len(data)) and getattr(buffer, "offset", 0) > 1:
            data = np.frombuffer(self.raw[buffer.offset : buffer.offset + buffer.size], np.uint8)
        if data is None or not len(data):
            raise CircuitError(f"tensor {self.name(index)!r} is not a constant")
        values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype)
        shape = tuple(int(d) for d in t.shape)
        if values.size != math.prod(shape):
            raise ModelFileError(f"{self.source}: tensor {self.name(index)!r} has the wrong size")
        return values.reshape(shape)

    def name(self, index: int) -> str:
        return self.tensor(index).name.decode("utf-8", "replace")

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor(index).shape)


def import_tflite(raw: bytes, source: str = "model", kernels: str = "reference") -> ImportedModel:
    """The integer network of a fully int8 ``.tflite`` model (see the module), with the
    roundings of TFLite's ``kernels``: 'reference' or 'builtin' (the optimised ones);
    ModelFileError for a file that is no flatbuffer or whose tables do not hold together
    (an index out of range, a missing field), CircuitError naming the operator the
    circuit cannot express."""
    if kernels not in FC_ROUNDING:
        raise ValueError(f"kernels must be one of {', '.join(FC_ROUNDING)}")
    g = _Graph(raw, source)
    try:
        return _walk(g, source, FC_ROUNDING[kernels])
    except (ModelFileError, CircuitError):
        raise
    except (IndexError, KeyError, TypeError, AttributeError, ValueError, OverflowError) as exc:
        # a flatbuffer's fields are offsets and indices, each trusted by nothing above
        raise ModelFileError(f"{source}: a malformed TFLite model ({first_line(exc)})") from None


def _walk(g: _Graph, source: str, per_channel_dense: str) -> ImportedModel:
    """The chain from the input, operator by operator (see :func:`import_tflite`)."""
    inputs, outputs = list(g.graph.inputs), list(g.graph.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise CircuitError(f"{source}: one input and one output expected")
    current = int(inputs[0])
    shape = g.shape(current)
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise CircuitError(f"{source}: the input must be one NHWC image, got shape {shape}")
    if g.tensor(current).type != TYPE_INT8:
        raise CircuitError(f"{source}: the input is not int8 — only fully integer models "
                           "(int8 in and out) can be imported exactly")  # fmt: skip
    s_in, z_in = g.activation(current)
    builder = _Builder(g, (shape[3], shape[1], shape[2]), s_in, z_in, per_channel_dense)
    finished = False
    for number, op in enumerate(g.graph.operators):
        kind = g.ops[op.opcodeIndex][0]
        where = f"{source}: operator {number} ({kind})"
        ins = [int(i) for i in op.inputs if i >= 0]
        if kind in SHAPE_OPS and all(g.tensor(o).type == TYPE_INT32 for o in op.outputs):
            continue  # computes a reshape's shape
        if not ins or ins[0] != current or len(op.outputs) != 1:
            raise CircuitError(f"{where}: not on the chain from the input")
        if finished and kind != "SOFTMAX":
            raise CircuitError(f"{where}: nothing but a softmax may follow the last dense layer")
        try:
            finished = builder.add(kind, op, ins, int(op.outputs[0])) or finished
        except CircuitError as exc:
            raise CircuitError(f"{where}: {exc}") from None
        current = int(op.outputs[0])
    if current != outputs[0]:
        raise CircuitError(f"{source}: the output is not the end of the chain")
    if not finished:
        raise CircuitError(f"{source}: the model does not end in a dense layer")
    return builder.result()


class _Builder:
    """Emits the integer layers operator by operator, tracking the current value's
    scale, zero point and layout (C, H, W), or None once flat."""

    def __init__(self, g: _Graph, chw: tuple[int, int, int], scale: float, zero: int,
                 per_channel_dense: str) -> None:  # fmt: skip
        self.g, self.input_shape, self.per_channel_dense = g, chw, per_channel_dense
        self.input = (scale, zero)
        self.scale, self.zero = scale, zero
        self.chw: tuple[int, int, int] | None = chw
        self.flattened_from: tuple[int, int, int] | None = None
        self.layers: list = []
        self.names: list[str] = []
        self.tensors: dict[int, tuple[int, int]] = {}
        self.last: tuple[Requant, int, np.ndarray] | None = None

    def _emit(self, layer, name: str, tensor: int | None = None) -> None:
        self.layers.append(layer)
        self.names.append(name)
        if tensor is not None:
            self.tensors[len(self.layers) - 1] = (tensor, self.zero)

    def add(self, kind: str, op, ins: list[int], out: int) -> bool:
        """Emit one operator; True for the final dense layer."""
        options = op.builtinOptions
        name = self.g.name(out).split(";")[0]  # TFLite joins the fused ops' names
        if kind == "CONV_2D":
            self._conv(options, ins, out, name)
        elif kind == "MAX_POOL_2D":
            self._pool(options, out, name)
        elif kind == "RESHAPE":
            self._reshape(out, name)
        elif kind == "FULLY_CONNECTED":
            return self._dense(options, ins, out, name)
        elif kind == "SOFTMAX":
            if self.last is None:
                raise CircuitError("a softmax must follow the last dense layer")
        else:
            raise CircuitError("the circuit cannot express this operator")
        return False

    def _requant(self, ins: list[int], out: int, activation: int, channels: int,
                 rounding: str) -> Requant:  # fmt: skip
        """The requantisation TFLite's kernel applies after linear operator ``ins``;
        the current scale and zero point become the output's."""
        if activation not in ACTIVATIONS:
            raise CircuitError(f"fused activation {activation} is not supported")
        w_scale, w_zero = self.g.quantization(ins[1])
        if (w_zero != 0).any():
            raise CircuitError("weights must be symmetric (zero point 0)")
        s_out, z_out = self.g.activation(out)
        w_scale = np.broadcast_to(w_scale, (channels,)) if len(w_scale) == 1 else w_scale
        if len(w_scale) != channels:
            raise CircuitError("one weight scale per tensor or output channel")
        pairs = [quantize_multiplier(float(self.scale) * float(s) / float(s_out)) for s in w_scale]
        multipliers = np.array([m for m, _ in pairs], dtype=np.int64)
        shifts = np.array([s for _, s in pairs], dtype=np.int64)
        if (multipliers < 1).any() or (shifts > 0).any() or (shifts < -31).any():
            raise CircuitError("a requantisation scale outside (2^-32, 1) is not supported")
        low, high = activation_range(activation, s_out, z_out)
        requant = Requant(multipliers, DOUBLING_HIGH_SHIFT, activation in (1, 3), rounding,
                          -shifts, (low - z_out, high - z_out))  # fmt: skip
        self.scale, self.zero = s_out, z_out
        return requant

    def _weights(self, index: int) -> np.ndarray:
        if self.g.tensor(index).type != TYPE_INT8:
            raise CircuitError("weights must be int8")
        w = self.g.constant(index, np.int8).astype(np.int64)
        if w.size and w.min() < -127:
            raise CircuitError("weights must lie in [-127, 127] (narrow range)")
        return w

    def _bias(self, ins: list[int], channels: int) -> np.ndarray:
        if len(ins) < 3:
            return np.zeros(channels, dtype=np.int64)
        if self.g.tensor(ins[2]).type != TYPE_INT32:
            raise CircuitError("biases must be int32")
        return self.g.constant(ins[2], np.dtype("<i4")).astype(np.int64)

    def _conv(self, options, ins: list[int], out: int, name: str) -> None:
        if self.chw is None:
            raise CircuitError("a convolution after a flatten")
        if options.dilationWFactor != 1 or options.dilationHFactor != 1:
            raise CircuitError("dilated convolutions are not supported")
        if options.strideW != options.strideH:
            raise CircuitError("only square strides")
        weight = self._weights(ins[1]).transpose(0, 3, 1, 2)  # OHWI → OIHW
        stride = int(options.strideW)
        padding = _padding(options.padding, self.chw[1:], weight.shape[2:], stride)
        conv = Conv(weight, self._bias(ins, len(weight)), stride, padding)
        produced = conv.output_shape(self.chw)
        n, h, w, c = self.g.shape(out)
        if (c, h, w) != produced:
            raise CircuitError(f"the output shape {(n, h, w, c)} is not the computed {produced}")
        self._emit(conv, name)
        requant = self._requant(ins, out, options.fusedActivationFunction, len(weight), "double")
        self._emit(requant, f"{name}.requant", out)
        self.chw = produced

    def _pool(self, options, out: int, name: str) -> None:
        if self.chw is None:
            raise CircuitError("a max-pool after a flatten")
        size = int(options.filterWidth)
        if not options.filterHeight == size == options.strideW == options.strideH:
            raise CircuitError("only square max-pools with stride = filter")
        if options.padding == 0 and any(d % size for d in self.chw[1:]):
            raise CircuitError("SAME padding that pads is not supported")
        if options.fusedActivationFunction != 0:
            raise CircuitError("a fused activation on a max-pool is not supported")
        self._same_quantisation(out, "a max-pool")
        pool = MaxPool(size)
        self.chw = pool.output_shape(self.chw)
        self._emit(pool, name, out)

    def _same_quantisation(self, out: int, what: str) -> None:
        if self.g.activation(out) != (self.scale, self.zero):
            raise CircuitError(f"{what} must keep its input's quantisation")

    def _reshape(self, out: int, name: str) -> None:
        out_shape = self.g.shape(out)
        self._same_quantisation(out, "a reshape")
        if self.chw is None or len(out_shape) != 2 or out_shape[1] != math.prod(self.chw):
            raise CircuitError(f"only a flatten to (1, n) is supported, got {out_shape}")
        self._flatten(name, out)

    def _flatten(self, name: str, tensor: int | None) -> None:
        self.flattened_from, self.chw = self.chw, None
        self._emit(Flatten(), name, tensor)

    def _dense(self, options, ins: list[int], out: int, name: str) -> bool:
        if self.chw is not None:  # a dense layer on an image flattens it implicitly
            self._flatten(f"{name}.flatten", None)
        if options.keepNumDims or len(self.g.shape(out)) != 2:
            raise CircuitError("only a dense layer to (1, n) is supported")
        weight = self._weights(ins[1])
        if self.flattened_from is not None:
            c, h, w = self.flattened_from
            order = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()
            weight = weight[:, order]  # vtrust flattens (C, H, W), TFLite (H, W, C)
            self.flattened_from = None
        self._emit(Dense(weight, self._bias(ins, len(weight))), name)
        w_scale = self.g.quantization(ins[1])[0].astype(np.float64)
        accumulator_scale = np.broadcast_to(w_scale * self.scale, (len(weight),)).copy()
        rounding = self.per_channel_dense if len(w_scale) > 1 else "double"  # see the module
        requant = self._requant(ins, out, options.fusedActivationFunction, len(weight), rounding)
        if self._consumer(out) in (None, "SOFTMAX"):
            self.last = (requant, out, accumulator_scale)
            return True
        self._emit(requant, f"{name}.requant", out)
        return False

    def _consumer(self, tensor: int) -> str | None:
        """The kind of the first operator reading ``tensor`` (None: none does)."""
        for op in self.g.graph.operators:
            if len(op.inputs) and int(op.inputs[0]) == tensor:
                return self.g.ops[op.opcodeIndex][0]
        return None

    def result(self) -> ImportedModel:
        requant, out, accumulator_scale = self.last
        z_in = self.input[1]
        network = Int8Network(self.input_shape, tuple(self.layers), tuple(self.names),
                              (INT8_MIN - z_in, INT8_MAX - z_in))  # fmt: skip
        quantized = QuantizedModel(network, self.input[0], accumulator_scale, z_in)
        return ImportedModel(quantized, requant, self.zero, self.tensors, out)


def _padding(mode: int, hw: tuple[int, int], kernel: tuple[int, int], stride: int) -> int:
    """vtrust's symmetric padding for TFLite's SAME (0) or VALID (1); CircuitError
    where SAME pads one side more than the other (or differently per axis)."""
    if mode == 1:
        return 0
    pads = set()
    for size, k in zip(hw, kernel, strict=True):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        if total % 2:
            raise CircuitError("SAME padding that is not symmetric is not supported")
        pads.add(total // 2)
    if len(pads) != 1:
        raise CircuitError("SAME padding that differs between height and width")
    return pads.pop()


def litert_tensors(raw: bytes, x: np.ndarray, kernels: str = "reference") -> dict[int, np.ndarray]:
    """Every tensor LiteRT computes for int8 inputs x (N, H, W, C), image by image:
    tensor index → (N, …) values. ``kernels``: 'reference' (TFLite's reference
    kernels), 'builtin' (the optimised kernels without delegates) or 'default' (what
    the interpreter runs by default, XNNPACK included)."""
    litert = require("ai_edge_litert.interpreter", "litert")
    resolver = {"reference": litert.OpResolverType.BUILTIN_REF,
                "builtin": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                "default": litert.OpResolverType.AUTO}[kernels]  # fmt: skip
    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor costs memory
        warnings.simplefilter("ignore", UserWarning)
        interpreter = litert.Interpreter(model_content=raw, num_threads=1,
                                         experimental_op_resolver_type=resolver,
                                         experimental_preserve_all_tensors=True)  # fmt: skip
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    details = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    values: dict[int, list[np.ndarray]] = {d["index"]: [] for d in details}
    for image in x:
        interpreter.set_tensor(index, image[None].astype(np.int8))
        interpreter.invoke()
        for d in details:
            try:
                values[d["index"]].append(interpreter.get_tensor(d["index"])[0].copy())
            except ValueError:  # a tensor the interpreter did not keep
                values.pop(d["index"], None)
    return {i: np.stack(v) for i, v in values.items() if v}


def compare_with_litert(imported: ImportedModel, raw: bytes, x: np.ndarray,
                        kernels: str = "reference", y: np.ndarray | None = None,
                        ) -> dict[str, Any]:  # fmt: skip
    """Run vtrust's integer network and LiteRT on the same inputs x (N, C, H, W) —
    vtrust's values, zero point subtracted — and count the int8 values that differ, per
    layer holding a TFLite tensor and for the logits; ``exact`` when none does. With
    labels ``y``, both accuracies (argmax of the int8 logits) too."""
    network = imported.network
    values = network.forward(x)
    nhwc = (np.asarray(x) + imported.quantized.input_zero_point).transpose(0, 2, 3, 1)
    theirs = litert_tensors(raw, nhwc, kernels)
    report: dict[str, Any] = {"kernels": kernels, "images": len(x), "layers": {}}
    for layer, (tensor, zero) in imported.tensors.items():
        if tensor not in theirs:
            continue
        mine = values[layer + 1].astype(np.int64) + zero
        other = theirs[tensor].astype(np.int64)
        if other.ndim == 4:  # NHWC → NCHW
            other = other.transpose(0, 3, 1, 2)
        elif isinstance(network.layers[layer], Flatten):
            c, h, w = network.shapes[layer]
            other = other.reshape(len(x), h, w, c).transpose(0, 3, 1, 2).reshape(len(x), -1)
        report["layers"][network.names[layer]] = int((mine != other).sum())
    logits = imported.int8_logits(values[-1].reshape(len(x), -1))
    reference = theirs[imported.logits_tensor].reshape(len(x), -1).astype(np.int64)
    report["logit_mismatches"] = int((logits != reference).sum())
    report["logit_values"] = int(logits.size)
    report["exact"] = report["logit_mismatches"] == 0 and not any(report["layers"].values())
    report["argmax_agreement"] = float((logits.argmax(1) == reference.argmax(1)).mean())
    if y is not None:
        report["vtrust_accuracy"] = float((logits.argmax(1) == y).mean())
        report["litert_accuracy"] = float((reference.argmax(1) == y).mean())
    return report
