"""Targets from torch files: TorchScript, ``torch.export`` programs and state dicts.

Nothing here unpickles arbitrary Python objects:

* TorchScript archives are read by ``torch.jit.load``, whose loader rebuilds only
  TorchScript objects and runs the archive's code in the TorchScript interpreter;
* ``torch.export`` programs (``.pt2``) are JSON graphs plus raw weights
  (``torch.export.load``);
* a state dict is read with ``torch.load(weights_only=True)`` (or from safetensors) and
  poured into the user's own module class (``--arch-module pkg.mod:Class``); a pickled
  whole module fails that restricted load and is refused with how to export instead.
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vtrust._extras import first_line
from vtrust.errors import ModelFileError
from vtrust.targets.base import InputSpec, Target, from_callable, from_module, module_runner

PICKLED_MODULE_HELP = (
    "it is a pickled module, and vtrust never unpickles model files; save it as "
    "TorchScript (torch.jit.save(torch.jit.script(model), 'model.ts')), as a torch.export "
    "program (torch.export.save(torch.export.export(model, (x,)), 'model.pt2')), as ONNX, "
    "or save model.state_dict() and pass --arch-module pkg.module:Class"
)


class ModeFrozen(nn.Module):
    """A module whose train/eval mode cannot be switched (``torch.export`` modules refuse
    ``train()``): its weights can still be trained, with batch-norm statistics fixed."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> ModeFrozen:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def load_torchscript(raw: bytes, spec: InputSpec | None, source: str, **kw: Any) -> Target:
    """A white-box target from a TorchScript archive (its input shape must be given)."""
    try:
        module = torch.jit.load(io.BytesIO(raw), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(
            f"{source}: not a loadable TorchScript archive ({first_line(exc)})"
        ) from None
    if spec is None:
        raise ModelFileError(
            f"{source}: a TorchScript file does not record its input shape; "
            "pass --input-shape C,H,W or data to take it from"
        )
    return _module_target(module, spec, source, **kw)


def exported_input_shape(raw: bytes, source: str) -> tuple[tuple[int, ...], bool, Any]:
    """A ``.pt2`` program's first input shape, whether its batch size is dynamic, and the
    program."""
    try:
        program = torch.export.load(io.BytesIO(raw))
    except Exception as exc:  # the loader raises many kinds on malformed archives
        raise ModelFileError(
            f"{source}: not a loadable torch.export program ({first_line(exc)})"
        ) from None
    user_inputs = list(program.graph_signature.user_inputs)
    nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if len(user_inputs) != 1 or "val" not in nodes[user_inputs[0]].meta:
        raise ModelFileError(f"{source}: the program must take exactly one image tensor")
    dims = list(nodes[user_inputs[0]].meta["val"].shape)
    dynamic = not isinstance(dims[0], int)
    shape = tuple(d if isinstance(d, int) else -1 for d in dims)
    return shape, dynamic, program


def load_exported(raw: bytes, spec: InputSpec | None, source: str, **kw: Any) -> Target:
    """A target from a ``torch.export`` program: white-box when its batch size is
    dynamic, else a black box at its one batch size."""
    shape, dynamic, program = exported_input_shape(raw, source)
    if len(shape) != 4:
        raise ModelFileError(
            f"{source}: the program's input has rank {len(shape)}, not 4 (N, C, H, W)"
        )
    if spec is None:
        spec = InputSpec(tuple(shape[1:]))  # type: ignore[arg-type]
    if tuple(spec.model_shape) != tuple(shape[1:]):
        raise ModelFileError(
            f"{source}: the program takes {tuple(shape[1:])}, not the given {spec.model_shape}"
        )
    module = ModeFrozen(program.module())
    if dynamic:
        return _module_target(module, spec, source, **kw)
    return from_callable(
        module_runner(module, spec),
        spec,
        outputs=kw.get("outputs", "auto"),
        provenance={"format": "torch-export", **kw.get("provenance", {})},
        class_names=kw.get("class_names"),
        fixed_batch=shape[0],
        white_box_reason=f"exported with a fixed batch of {shape[0]}; export with "
        "dynamic_shapes={'x': {0: torch.export.Dim('batch')}} for white-box use",
    )


def import_arch(reference: str) -> nn.Module:
    """Instantiate the user's module class (or factory) ``pkg.module:Name`` with no
    arguments; the current folder is searched first, like ``python -m``."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ModelFileError(f"--arch-module must be pkg.module:Class, got {reference!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(f"cannot import {reference}: {exc}") from None
    try:
        module = factory()
    except Exception as exc:  # the user's constructor
        raise ModelFileError(f"{reference}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise ModelFileError(f"{reference}() returned a {type(module).__name__}, not an nn.Module")
    return module


def read_state_dict(raw: bytes, kind: str, source: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``torch.save`` archive (weights only) or a safetensors file."""
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load as st_load

        try:
            return st_load(raw)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{source}: corrupted safetensors data ({exc})") from None
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a pickled module, others for damage
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise ModelFileError(f"{source}: refused: {PICKLED_MODULE_HELP}") from None
        raise ModelFileError(
            f"{source}: not a readable torch.save archive ({first_line(exc)})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a common checkpoint layout
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelFileError(f"{source}: holds no state dict (names → tensors)")
    return state


def load_state_dict(
    raw: bytes, kind: str, spec: InputSpec | None, source: str, arch: str | None, **kw: Any
) -> Target:
    """A white-box target: the user's class ``arch`` with the file's weights."""
    state = read_state_dict(raw, kind, source)
    if arch is None:
        raise ModelFileError(
            f"{source}: a state dict holds weights only; pass "
            "--arch-module pkg.module:Class to say which module they fit"
        )
    module = import_arch(arch)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{source}: weights do not fit {arch}: {first_line(exc)}") from None
    if spec is None:
        raise ModelFileError(f"{source}: pass --input-shape C,H,W or data to take it from")
    return _module_target(module, spec, source, **kw)


def _module_target(module: nn.Module, spec: InputSpec, source: str, **kw: Any) -> Target:
    try:
        return from_module(
            module,
            spec,
            outputs=kw.get("outputs", "auto"),
            provenance=kw.get("provenance"),
            class_names=kw.get("class_names"),
        )
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ModelFileError(
            f"{source}: the model cannot run on input {spec.model_shape}: {first_line(exc)}"
        ) from None
