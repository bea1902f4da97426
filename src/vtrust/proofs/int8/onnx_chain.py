"""An ONNX float classifier (vtrust's :class:`~vtrust.targets.onnx_torch.OnnxModule`) as a
chain of ordinary torch modules, so post-training quantisation
(:func:`~vtrust.proofs.int8.ptq.quantize_model`) can trace it.

The graph is walked from its input: ``Conv`` (no groups or dilation, symmetric pads)
becomes ``nn.Conv2d``; ``Gemm`` (α = β = 1) and ``MatMul`` followed by ``Add`` of a
constant become ``nn.Linear``; ``BatchNormalization`` ``nn.BatchNorm2d``; ``Relu``,
``MaxPool`` (no padding), ``Flatten`` (axis 1) and a ``Reshape`` to two dimensions
``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten``; ``Identity`` and ``Dropout`` are dropped;
an ``Add`` of the chain's value and an earlier one is a residual add; a final
``Softmax`` is dropped (the proof is about the logits, whose argmax it keeps). Anything
else — another operator, a branch, a constant the walk cannot read — is refused with
:class:`~vtrust.errors.CircuitError` naming the node. :func:`chain_module` checks the
chain against the graph on the caller's images before returning it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vtrust.errors import CircuitError

DROPPED = ("Identity", "Dropout")
AGREEMENT = 1e-4  #: the chain's logits within this (relative to their scale) of the graph's


class Chain(nn.Module):
    """Modules applied in order; a step that is an int j adds step j's output (−1: the
    input) to the running value (a residual add)."""

    def __init__(self, steps: list[nn.Module | int]) -> None:
        super().__init__()
        self.plan = tuple(s if isinstance(s, int) else None for s in steps)
        self.layers = nn.ModuleList(s for s in steps if not isinstance(s, int))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]  # outputs[j + 1]: step j's
        modules = iter(self.layers)
        for source in self.plan:
            x = next(modules)(x) if source is None else x + outputs[source + 1]
            outputs.append(x)
        return x


def chain_module(module, images: np.ndarray) -> Chain:
    """``module`` (an OnnxModule) as a :class:`Chain`; CircuitError naming the node it
    cannot express, or if the chain's logits differ from the graph's on ``images``."""
    env = {name: module.weights[slot].detach() for name, slot in module.slots.items()}
    env.update({name: getattr(module, buffer) for name, buffer in module.stats.items()})
    env.update(module.constants)
    steps: list[nn.Module | int] = []
    where = {module.input_name: -1}  # value name → the step that produced it
    current = module.input_name
    program = list(module.program)
    i = 0
    while i < len(program):
        op, ins, outs, attrs = program[i]
        name = f"{op} node {i + 1} ({outs[0]})"
        if current not in ins:
            raise CircuitError(f"{name}: not a chain (it does not read the previous value)")
        try:
            step, consumed = _step(op, ins, attrs, env, current, where, program, i)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CircuitError(f"{name}: cannot read it ({exc})") from None
        except CircuitError as exc:
            raise CircuitError(f"{name}: {exc}") from None
        i += consumed
        last_out = program[i - 1][2][0]
        if step is not None:
            steps.append(step)
            where[last_out] = len(steps) - 1
        else:
            where[last_out] = where[current]
        current = last_out
    if current != module.output_name:
        raise CircuitError("the graph's output is not the end of its chain")
    chain = Chain(steps).eval()
    _check_agreement(module, chain, images)
    return chain


Step = nn.Module | int | None  # a module, a residual add's source, or nothing (dropped)


def _step(op: str, ins: list[str], attrs: dict[str, Any], env: dict, current: str,
          where: dict[str, int], program: list, i: int) -> tuple[Step, int]:  # fmt: skip
    """The step for node i and how many nodes it consumed (None: dropped)."""
    if op == "Conv":
        return _conv(ins, attrs, env), 1
    if op == "Gemm":
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA"):
            raise CircuitError("only Gemm with α = β = 1 and an untransposed input")
        weight = env[ins[1]]
        weight = weight if attrs.get("transB", 0) else weight.T
        return _linear(weight, env[ins[2]] if len(ins) > 2 and ins[2] else None), 1
    if op == "MatMul":
        weight = env[ins[1]].T
        nxt = program[i + 1] if i + 1 < len(program) else None
        if nxt and nxt[0] == "Add" and program[i][2][0] in nxt[1]:
            other = [n for n in nxt[1] if n != program[i][2][0]]
            if other and other[0] in env:
                return _linear(weight, env[other[0]]), 2
        return _linear(weight, None), 1
    if op == "BatchNormalization":
        scale, bias, mean, var = (env[n] for n in ins[1:5])
        norm = nn.BatchNorm2d(len(scale), eps=float(attrs.get("epsilon", 1e-5)))
        with torch.no_grad():
            norm.weight.copy_(scale), norm.bias.copy_(bias)
            norm.running_mean.copy_(mean), norm.running_var.copy_(var)
        return norm, 1
    if op == "Relu":
        return nn.ReLU(), 1
    if op == "MaxPool":
        kernel, strides = list(attrs["kernel_shape"]), list(attrs.get("strides", [1, 1]))
        if len(set(kernel)) != 1 or kernel != strides or any(attrs.get("pads", [0])):
            raise CircuitError("only square max-pools with stride = kernel and no padding")
        return nn.MaxPool2d(int(kernel[0])), 1
    if op == "Flatten":
        if int(attrs.get("axis", 1)) != 1:
            raise CircuitError("only Flatten(axis=1)")
        return nn.Flatten(), 1
    if op == "Reshape":
        shape = [int(v) for v in env[ins[1]].flatten().tolist()]
        if len(shape) != 2:  # to (batch, n): the agreement check confirms it flattens
            raise CircuitError(f"only a reshape to (batch, n) is supported, got {shape}")
        return nn.Flatten(), 1
    if op == "Add":
        other = [n for n in ins if n != current]
        if len(ins) != 2 or len(other) != 1 or other[0] not in where:
            raise CircuitError("only a residual add of the chain's value and an earlier one")
        return where[other[0]], 1
    if op in DROPPED:
        return None, 1
    if op == "Softmax" and i == len(program) - 1:
        return None, 1
    raise CircuitError("the circuit cannot express this operator")


def _conv(ins: list[str], attrs: dict[str, Any], env: dict) -> nn.Conv2d:
    weight = env[ins[1]]
    if weight.dim() != 4 or int(attrs.get("group", 1)) != 1:
        raise CircuitError("only 2-D convolutions without groups")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise CircuitError("dilated convolutions are not supported")
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(set(strides)) != 1 or len(set(pads)) != 1:
        raise CircuitError("only square strides and the same padding on every side")
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise CircuitError(f"auto_pad {attrs['auto_pad']!r} is not supported")
    bias = env[ins[2]] if len(ins) > 2 and ins[2] else None
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]),
                     stride=int(strides[0]), padding=int(pads[0]),
                     bias=bias is not None)  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    if weight.dim() != 2:
        raise CircuitError("a dense layer needs a 2-D weight")
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias.reshape(-1))
    return linear


def _check_agreement(module, chain: Chain, images: np.ndarray) -> None:
    x = torch.from_numpy(np.ascontiguousarray(images[:64], dtype=np.float32))
    with torch.no_grad():
        graph, ours = module(x), chain(x)
    if isinstance(graph, tuple | list):
        graph = graph[0]
    if module.program and module.program[-1][0] == "Softmax":  # the chain stops before it
        ours = torch.softmax(ours, dim=1)
    scale = float(graph.abs().max()) or 1.0
    if graph.shape != ours.shape or float((graph - ours).abs().max()) > AGREEMENT * scale:
        raise CircuitError("the chain read from the graph does not reproduce its outputs")


def quantizable_module(target, images: np.ndarray) -> nn.Module:
    """The float module of a white-box target, for post-training quantisation: the
    user's own module, or the chain read from an ONNX graph (checked on ``images``);
    CircuitError for a black box or for inputs that are not plain [0, 1] pixels."""
    from vtrust.targets.base import Preprocessed
    from vtrust.targets.onnx_torch import OnnxModule

    if not target.white_box:
        hint = "; a fully integer .tflite is imported with `vtrust int8 import`" if (
            target.format == "tflite") else ""  # fmt: skip
        raise CircuitError(f"a black box cannot be quantised ({target.white_box_reason}){hint}")
    if target.format == "torch-export":
        raise CircuitError("a torch.export program holds functional operators, not "
                           "layers: quantise its state dict (--arch-module) or ONNX")  # fmt: skip
    module = target.module
    if isinstance(module, Preprocessed):
        if not module.spec.is_identity or module.preprocess is not None:
            raise CircuitError("the model's inputs are not plain [0, 1] pixels (a value range, "
                               "mean or layout): quantisation expects them")  # fmt: skip
        module = module.inner
    if isinstance(module, OnnxModule):
        return chain_module(module, images)
    if isinstance(module, torch.jit.ScriptModule):
        raise CircuitError("a TorchScript module cannot be traced into layers: quantise its "
                           "state dict (with --arch-module) or an ONNX export")  # fmt: skip
    return module
