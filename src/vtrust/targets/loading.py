"""Loading any model file as a :class:`~vtrust.targets.base.Target`, and its data.

:func:`load_target` tells the format by content (:mod:`vtrust.targets.sniff`) and hands
the bytes to the loader of that format; :func:`load_target_and_splits` also loads the
dataset splits — those a vtrust model file records, or the ``--data`` spec, fitted to the
target's input (image folders resized, other data checked) — and checks an ONNX model's
torch conversion against onnxruntime on them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vtrust.errors import DatasetError, ModelFileError
from vtrust.targets.base import InputSpec, Target, as_target
from vtrust.targets.options import LoadOptions, read_model_bytes

NEEDS_SHAPE = ("torchscript", "torch-save", "safetensors")


def load_target(
    path: str | Path,
    options: LoadOptions = LoadOptions(),
    *,
    data_shape: tuple[int, int, int] | None = None,
) -> Target:
    """The target in the model file at ``path``, whatever its format.

    ``data_shape`` (C, H, W) is the input shape to assume when neither the file nor
    ``options`` give one.

    Raises:
        ModelFileError: unknown, corrupted or refused format (a pickle), or a model that
            cannot run on its input.
        MissingExtra: the format's optional dependency is not installed.
    """
    raw = read_model_bytes(path)
    return load_target_bytes(raw, options, source=str(path), data_shape=data_shape)


def load_target_bytes(
    raw: bytes,
    options: LoadOptions = LoadOptions(),
    *,
    source: str = "<bytes>",
    data_shape: tuple[int, int, int] | None = None,
) -> Target:
    """:func:`load_target` of a file's bytes."""
    from vtrust.targets.sniff import sniff

    kind = sniff(raw)
    provenance: dict[str, Any] = {
        "format": kind,
        "path": source,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    common = {
        "outputs": options.outputs,
        "provenance": provenance,
        "class_names": options.class_names,
    }
    if kind in ("vtrust", "damaged-safetensors"):  # the vtrust reader names the damage
        return zoo_target(raw, source, provenance)
    given = options.spec() if options.given_spec else None
    if kind in ("onnx", "tflite", "torch-export"):
        spec = given if options.input_shape else None
        if kind == "onnx":
            from vtrust.targets.onnx_files import load_onnx

            return _with_options(load_onnx(raw, spec, source, **common), options)
        if kind == "tflite":
            from vtrust.targets.litert_files import load_tflite

            return _with_options(load_tflite(raw, spec, source, **common), options)
        from vtrust.targets.torch_files import load_exported

        return load_exported(raw, options.spec(_exported_shape(raw, source)), source, **common)
    spec = options.spec(data_shape)
    if kind == "torchscript":
        from vtrust.targets.torch_files import load_torchscript

        return load_torchscript(raw, spec, source, **common)
    if kind in ("torch-save", "safetensors"):
        from vtrust.targets.torch_files import load_state_dict

        return load_state_dict(raw, kind, spec, source, options.arch_module, **common)
    if kind == "pickle":
        from vtrust.targets.torch_files import PICKLED_MODULE_HELP

        raise ModelFileError(f"{source}: refused: {PICKLED_MODULE_HELP}")
    if kind == "npz":
        raise ModelFileError(
            f"{source}: this is an .npz data file, not a model (give it as --data npz:{source})"
        )
    raise ModelFileError(
        f"{source}: not a model file vtrust reads (vtrust, ONNX, TFLite, TorchScript, "
        "torch.export .pt2, or a state dict with --arch-module)"
    )


def _exported_shape(raw: bytes, source: str) -> tuple[int, int, int] | None:
    from vtrust.targets.torch_files import exported_input_shape

    shape, _, _ = exported_input_shape(raw, source)
    return tuple(shape[1:]) if len(shape) == 4 else None  # type: ignore[return-value]


def _with_options(target: Target, options: LoadOptions) -> Target:
    """Apply a value range or normalisation the user gave to a file-inferred spec."""
    if (
        options.value_range is None
        and options.mean is None
        and options.std is None
        and options.layout is None
    ):
        return target
    spec = target.spec
    updated = InputSpec(
        spec.shape,
        options.layout or spec.layout,
        options.value_range or spec.value_range,
        options.mean,
        options.std,
    )
    if updated.layout != spec.layout:
        raise ModelFileError(f"the model's input is {spec.layout}, not {updated.layout}")
    target.spec = updated
    if target.module is not None:
        target.module.spec = updated  # the converted module's own preprocessing
    return target


def zoo_target(raw: bytes, source: str, provenance: dict[str, Any]) -> Target:
    """A vtrust model file as a white-box target; its metadata in the provenance."""
    from vtrust.models.files import load_model_bytes

    loaded = load_model_bytes(raw, source=source)
    target = as_target(loaded.model)
    target.provenance = {
        **provenance,
        "architecture": loaded.model.spec.name,
        "weights_sha256": loaded.sha256,
        "metadata": loaded.metadata,
    }
    return target


def load_target_and_splits(
    path: str | Path,
    data: str | None = None,
    options: LoadOptions = LoadOptions(),
    *,
    seed: int = 0,
):
    """The target in ``path`` and its dataset splits: ``(Target, Splits)``.

    A vtrust model file brings its recorded data (``data`` overrides it); any other
    format needs ``data``. Data are fitted to the target's input: image folders resized,
    everything else checked against its shape and class count. An ONNX target's torch
    conversion is checked against onnxruntime on the victim split.
    """
    from vtrust.data import load_dataset
    from vtrust.models.files import recorded_splits
    from vtrust.targets.onnx_files import check_conversion
    from vtrust.targets.sniff import sniff

    raw = read_model_bytes(path)
    kind = sniff(raw)
    if kind == "vtrust":
        target = load_target_bytes(raw, options, source=str(path))
        return target, recorded_splits(target.provenance["metadata"], str(path), data)
    if data is None:
        raise DatasetError(
            f"{path}: a {kind} model file records no data; pass --data SPEC "
            "(npz:FILE, folder:DIR, idx:DIR, digits, synthetic)"
        )
    data_shape = None
    if kind in NEEDS_SHAPE and options.input_shape is None:
        data_shape = load_dataset(data, seed=seed).input_shape
    target = load_target_bytes(raw, options, source=str(path), data_shape=data_shape)
    splits = load_dataset(
        data, seed=seed, input_shape=target.input_shape, n_classes=target.n_classes
    )
    target.provenance["data"] = {"spec": splits.spec, "sha256": splits.digest}
    return check_conversion(target, splits.victim.x), splits
