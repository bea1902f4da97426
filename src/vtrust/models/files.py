"""Model files: safetensors weights with vtrust's JSON metadata in the same file.

Layout: a standard safetensors file whose header metadata holds two strings,
``vtrust`` (the JSON metadata below) and ``vtrust_sha256`` (its SHA-256). The metadata
records the format version, the architecture, the dataset and split seed, the training
settings, the test accuracy and ``weights_sha256``, a canonical hash of every tensor.

Loading never unpickles anything and trusts nothing: a truncated or bit-flipped file, an
unknown format version, or weights that do not fit the recorded architecture each raise
:class:`~vtrust.errors.ModelFileError`. Saving is atomic.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from vtrust import __version__
from vtrust._io import atomic_write_bytes, digests_equal
from vtrust.errors import InputError, ModelFileError
from vtrust.models.header import (
    FORMAT,
    FORMAT_VERSION,
    ArchRecord,
    read_model_header,
    weights_digest,
)
from vtrust.models.zoo import ZooModel, build_model


def model_sha256(model: torch.nn.Module | dict[str, torch.Tensor]) -> str:
    """Canonical SHA-256 of a model's weights: names, dtypes, shapes and bytes, in name
    order (:func:`vtrust.models.header.weights_digest`, which checks files without torch)."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    records = []
    for name, value in state.items():
        tensor = value.detach().cpu().contiguous()
        records.append((name, str(tensor.dtype), tuple(tensor.shape), tensor.numpy().tobytes()))
    return weights_digest(records)


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a file, with the file's metadata."""

    model: ZooModel
    metadata: dict[str, Any]

    @property
    def sha256(self) -> str:
        return self.metadata["weights_sha256"]


def save_model(path: str | Path, model: ZooModel, metadata: dict[str, Any] | None = None) -> str:
    """Write ``model`` and ``metadata`` to ``path`` atomically; return the weights' SHA-256.

    ``metadata`` may hold any JSON-serialisable fields (dataset, training, accuracy …);
    the format, version, architecture and weights hash are filled in here.
    """
    if not isinstance(model, ZooModel):
        raise InputError("only zoo models (vtrust.models.build_model) can be saved")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = model_sha256(state)
    meta = dict(metadata or {})
    meta.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        arch=model.spec.to_json(),
        weights_sha256=digest,
        vtrust_version=__version__,
    )
    meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
    header_meta = {
        "vtrust": meta_json,
        "vtrust_sha256": hashlib.sha256(meta_json.encode()).hexdigest(),
    }
    atomic_write_bytes(path, _canonical_header(st_save(state, metadata=header_meta)))
    return digest


def _canonical_header(raw: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted, so that equal models
    give byte-identical files (the writer's key order is not fixed)."""
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + header_len :]


def _rebuild(arch: ArchRecord, source: str) -> ZooModel:
    try:
        return build_model(arch.name, arch.input_shape, arch.n_classes, arch.params)
    except (InputError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source}: cannot build architecture {arch.name!r}: {exc}") from None


ZOO_ONLY = (
    "this needs a vtrust model file (a zoo architecture); other formats work with info, "
    "audit, attack run, defense replay, evaluate and watermark verify/robustness"
)


def load_model_bytes(raw: bytes, *, source: str = "<bytes>") -> LoadedModel:
    """Rebuild a model from the bytes of a model file; see :func:`load_model`."""
    from vtrust.targets.sniff import sniff

    kind = sniff(raw)
    if kind not in ("vtrust", "unknown", "damaged-safetensors"):
        box = " a black box (no weights vtrust can change);" if kind == "tflite" else ""
        raise ModelFileError(f"{source}: a {kind} model,{box} not a vtrust model file: {ZOO_ONLY}")
    header = read_model_header(raw, source)  # checksums, and the architecture's shapes
    try:
        state = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source}: corrupted tensor data ({exc})") from None
    model = _rebuild(header.arch, source)
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(model, header.metadata)


def load_model(path: str | Path) -> LoadedModel:
    """Load and validate a model file written by :func:`save_model`.

    Raises:
        ModelFileError: the file is missing, truncated, corrupted, of another format
            version, or its weights do not match its architecture.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {p}: {exc.strerror or exc}") from None
    return load_model_bytes(raw, source=str(p))


def load_with_splits(path: str | Path, data: str | None = None):
    """A model file and the dataset splits it was trained on: ``(LoadedModel, Splits)``.

    The data are the spec recorded in the file's metadata (and its split seed), or
    ``data`` — a dataset spec that overrides it (the data moved, or the user's own).

    Raises:
        ModelFileError: the file names no dataset and ``data`` is not given.
        DatasetError: the data cannot be loaded, or differ from the recorded content hash.
    """
    loaded = load_model(path)
    return loaded, recorded_splits(loaded.metadata, str(path), data)


def recorded_splits(metadata: dict[str, Any], source: str, data: str | None = None):
    """The splits a model file's metadata records (checked against its recorded content
    hash), or those of ``data`` when given."""
    from vtrust.data import load_dataset
    from vtrust.errors import DatasetError

    record = metadata.get("dataset")
    record = record if isinstance(record, dict) else {}
    spec = data if data is not None else record.get("spec")
    if not isinstance(spec, str) or not spec:
        raise ModelFileError(f"{source}: metadata does not name the training dataset (pass --data)")
    seed = record.get("split_seed", 0)
    if type(seed) is not int:
        raise ModelFileError(f"{source}: metadata has a malformed split seed")
    splits = load_dataset(spec, seed=seed)
    recorded = record.get("sha256")
    if data is None and isinstance(recorded, str) and not digests_equal(recorded, splits.digest):
        raise DatasetError(
            f"{spec}: the data changed since {source} was trained on them (content hash "
            f"{splits.digest[:12]}… ≠ recorded {recorded[:12]}…); pass --data to use them anyway"
        )
    return splits
