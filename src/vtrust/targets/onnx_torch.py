"""ONNX graphs as trainable torch modules (the white-box side of an ONNX target).

vtrust converts the graph itself instead of using onnx2torch: onnx2torch imports
torchvision at import time, and no torchvision wheel on PyPI loads beside the CPU build of
torch that edge-audit machines install. :class:`OnnxModule` interprets the graph node by
node with torch operators; float initialisers become parameters (so fine-tuning, pruning
and embedding work), integer ones constants. The operators covered are those of image
classifiers: convolution, dense layers, batch norm, pooling, activations, softmax and the
shape plumbing between them. A graph with any other operator raises
:class:`UnsupportedGraph`, naming it, and the target stays a black box.

The caller checks the module against onnxruntime on the user's data
(:func:`vtrust.targets.onnx_files.check_conversion`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class UnsupportedGraph(ValueError):
    """The graph uses an operator or attribute this converter does not translate."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(attrs: dict[str, Any], spatial: int) -> list[int]:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise UnsupportedGraph(f"auto_pad {attrs['auto_pad']!r}")
    pads = list(attrs.get("pads", [0] * (2 * spatial)))
    # ONNX: (begin_1, begin_2, end_1, end_2); F.pad wants (end_last, begin_last, ...)
    out: list[int] = []
    for axis in reversed(range(spatial)):
        out += [pads[axis], pads[axis + spatial]]
    return out


def _conv(x, w, b=None, *, a):
    spatial = w.dim() - 2
    x = F.pad(x, _pads(a, spatial))
    conv = {1: F.conv1d, 2: F.conv2d}.get(spatial)
    if conv is None:
        raise UnsupportedGraph(f"{spatial}-d convolution")
    return conv(
        x,
        w,
        b,
        stride=a.get("strides", 1),
        dilation=a.get("dilations", 1),
        groups=a.get("group", 1),
    )


def _pool(kind: str):
    def pool(x, *, a):
        kernel = list(a["kernel_shape"])
        pads = _pads(a, len(kernel))
        stride = a.get("strides", kernel)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            x = F.pad(x, pads, value=float("-inf"))
            return F.max_pool2d(x, kernel, stride, dilation=a.get("dilations", 1), ceil_mode=ceil)
        if any(pads) and not a.get("count_include_pad", 0):
            ones = F.pad(torch.ones_like(x[:1, :1]), pads)
            total = F.avg_pool2d(F.pad(x, pads), kernel, stride, ceil_mode=ceil)
            return total / F.avg_pool2d(ones, kernel, stride, ceil_mode=ceil)
        return F.avg_pool2d(F.pad(x, pads), kernel, stride, ceil_mode=ceil)

    return pool


def _gemm(a_, b_, c=None, *, a):
    if a.get("transA", 0):
        a_ = a_.t()
    if a.get("transB", 0):
        b_ = b_.t()
    out = a.get("alpha", 1.0) * (a_ @ b_)
    return out if c is None else out + a.get("beta", 1.0) * c


def _batch_norm(module: OnnxModule):
    def bn(x, scale, bias, mean, var, *, a):
        return F.batch_norm(
            x,
            mean,
            var,
            scale,
            bias,
            training=module.training,
            momentum=1 - a.get("momentum", 0.9),
            eps=a.get("epsilon", 1e-5),
        )

    return bn


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _reshape(module: OnnxModule):
    def reshape(x, shape, *, a):
        dims = _ints(shape)
        if module.static_batch is not None and dims and dims[0] == module.static_batch:
            dims[0] = x.shape[0]  # a graph exported at one batch size: keep the batch
        dims = [
            x.shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(dims)
        ]
        return x.reshape(dims)

    return reshape


def _axes(a: dict[str, Any], given: torch.Tensor | None) -> list[int]:
    return _ints(given) if given is not None else list(a.get("axes", []))


def _squeeze(x, axes=None, *, a):
    dims = _axes(a, axes)
    return x.squeeze() if not dims else x.squeeze(tuple(d % x.dim() for d in dims))


def _unsqueeze(x, axes=None, *, a):
    for d in sorted(_axes(a, axes)):
        x = x.unsqueeze(d if d >= 0 else d + x.dim() + 1)
    return x


def _clip(x, lo=None, hi=None, *, a):
    lo = a.get("min") if lo is None else lo
    hi = a.get("max") if hi is None else hi
    return torch.clamp(x, min=lo, max=hi)


def _reduce(fn: Callable[..., torch.Tensor]):
    def reduce(x, axes=None, *, a):
        dims = _axes(a, axes) or list(range(x.dim()))
        return fn(x, dim=dims, keepdim=bool(a.get("keepdims", 1)))

    return reduce


def _flatten(x, *, a):
    axis = a.get("axis", 1) % max(x.dim(), 1)
    lead = int(np.prod(x.shape[:axis])) if axis else 1
    return x.reshape(lead, -1)


_SIMPLE: dict[str, Callable[..., torch.Tensor]] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": lambda x, y, *, a: x @ y,
    "Add": lambda x, y, *, a: x + y,
    "Sub": lambda x, y, *, a: x - y,
    "Mul": lambda x, y, *, a: x * y,
    "Div": lambda x, y, *, a: x / y,
    "Relu": lambda x, *, a: F.relu(x),
    "LeakyRelu": lambda x, *, a: F.leaky_relu(x, a.get("alpha", 0.01)),
    "Sigmoid": lambda x, *, a: torch.sigmoid(x),
    "Tanh": lambda x, *, a: torch.tanh(x),
    "Softmax": lambda x, *, a: torch.softmax(x, a.get("axis", -1)),
    "LogSoftmax": lambda x, *, a: torch.log_softmax(x, a.get("axis", -1)),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda x, *, a: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "GlobalMaxPool": lambda x, *, a: x.amax(dim=tuple(range(2, x.dim())), keepdim=True),
    "Flatten": _flatten,
    "Transpose": lambda x, *, a: (
        x.permute(*a["perm"]) if "perm" in a else x.permute(*reversed(range(x.dim())))
    ),
    "Concat": lambda *xs, a: torch.cat(xs, a["axis"]),
    "Identity": lambda x, *, a: x,
    "Dropout": lambda x, *_, a: x,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Clip": _clip,
    "ReduceMean": _reduce(torch.mean),
    "ReduceSum": _reduce(torch.sum),
}


class OnnxModule(nn.Module):
    """An ONNX image classifier as a torch module: one image input, the first output."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        super().__init__()
        graph = model.graph
        init_names = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in init_names]
        if len(inputs) != 1:
            raise UnsupportedGraph(f"{len(inputs)} graph inputs (one image input expected)")
        self.input_name = inputs[0].name
        self.output_name = graph.output[0].name
        batch_dim = inputs[0].type.tensor_type.shape.dim
        self.static_batch = batch_dim[0].dim_value if batch_dim and batch_dim[0].dim_value else None
        self.weights = nn.ParameterList()
        self.constants: dict[str, torch.Tensor] = {}
        self.slots: dict[str, int] = {}
        self.stats: dict[str, str] = {}  # batch-norm running statistics: buffers
        self._stat_names = {
            name for n in graph.node if n.op_type == "BatchNormalization" for name in n.input[3:5]
        }
        for tensor in graph.initializer:
            self._hold(tensor.name, numpy_helper.to_array(tensor))
        self.program: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        for node in graph.node:
            attrs = _attrs(node)
            if node.op_type == "Constant":
                if "value" not in attrs:
                    raise UnsupportedGraph("Constant without a tensor value")
                self._hold(node.output[0], numpy_helper.to_array(attrs["value"]))
                continue
            if node.op_type not in _SIMPLE and node.op_type not in (
                "BatchNormalization",
                "Reshape",
            ):
                raise UnsupportedGraph(f"operator {node.op_type}")
            self.program.append((node.op_type, list(node.input), list(node.output), attrs))
        self._special = {"BatchNormalization": _batch_norm(self), "Reshape": _reshape(self)}

    def _hold(self, name: str, value: np.ndarray) -> None:
        tensor = torch.from_numpy(np.array(value))
        if name in self._stat_names:
            self.stats[name] = f"stat_{len(self.stats)}"
            self.register_buffer(self.stats[name], tensor.float().clone())
        elif tensor.is_floating_point():
            self.slots[name] = len(self.weights)
            self.weights.append(nn.Parameter(tensor.float()))
        else:
            self.constants[name] = tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.input_name: x, **self.constants}
        for name, slot in self.slots.items():
            env[name] = self.weights[slot]
        for name, buffer in self.stats.items():
            env[name] = getattr(self, buffer)
        for op, ins, outs, attrs in self.program:
            fn = self._special.get(op) or _SIMPLE[op]
            args = [env[i] if i else None for i in ins]
            while args and args[-1] is None:
                args.pop()
            env[outs[0]] = fn(*args, a=attrs)
        return env[self.output_name]
