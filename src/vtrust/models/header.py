"""Reading and checking a vtrust model file without torch: its metadata and its tensors.

A model file is a safetensors file whose header metadata holds ``vtrust`` (vtrust's JSON
metadata) and ``vtrust_sha256`` (that JSON's SHA-256). :func:`read_model_header` checks
everything that can be checked from the bytes — the metadata checksum, the format
version, every tensor's record against the data it points to, the canonical weights
hash (the same one :func:`vtrust.models.files.model_sha256` computes from tensors), and
that the tensors are exactly those of the recorded architecture
(:mod:`vtrust.models.plans`) — so ``vtrust info`` validates a file in a fraction of a
second, and loading builds a model only from a file that passed.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from vtrust._io import digests_equal, parse_json
from vtrust.errors import InputError, ModelFileError
from vtrust.models.plans import state_shapes

FORMAT = "vtrust-model"
FORMAT_VERSION = 1
MAX_HEADER = 100 * 1024 * 1024

# safetensors dtype codes: (torch's name, which the weights hash records; bytes per item)
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("torch.float64", 8), "F32": ("torch.float32", 4), "F16": ("torch.float16", 2),
    "BF16": ("torch.bfloat16", 2), "I64": ("torch.int64", 8), "I32": ("torch.int32", 4),
    "I16": ("torch.int16", 2), "I8": ("torch.int8", 1), "U8": ("torch.uint8", 1),
    "BOOL": ("torch.bool", 1),
}  # fmt: skip


@dataclass(frozen=True)
class ArchRecord:
    """The architecture a model file records."""

    name: str
    input_shape: tuple[int, int, int]
    n_classes: int
    params: dict[str, Any]


@dataclass(frozen=True)
class ModelHeader:
    """A checked model file: metadata, architecture and tensor shapes (name → shape)."""

    metadata: dict[str, Any]
    arch: ArchRecord
    shapes: dict[str, tuple[int, ...]]

    @property
    def n_parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values())


def weights_digest(records: list[tuple[str, str, tuple[int, ...], bytes]]) -> str:
    """The canonical weights hash over ``(name, torch dtype name, shape, bytes)`` records:
    in name order, each name, dtype, JSON shape and little-endian bytes."""
    digest = hashlib.sha256()
    for name, dtype, shape, data in sorted(records, key=lambda r: r[0]):
        digest.update(name.encode())
        digest.update(dtype.encode())
        digest.update(json.dumps(list(shape)).encode())
        digest.update(data)
    return digest.hexdigest()


def _safetensors_header(raw: bytes, source: str) -> tuple[dict[str, Any], int]:
    if len(raw) < 8:
        raise ModelFileError(f"{source}: truncated model file ({len(raw)} bytes)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > min(len(raw) - 8, MAX_HEADER):
        raise ModelFileError(f"{source}: truncated or corrupted model header")
    try:
        header = parse_json(raw[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{source}: not a vtrust model file (bad header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: not a vtrust model file (bad header)")
    return header, 8 + header_len


def _metadata(header: dict[str, Any], source: str) -> dict[str, Any]:
    header_meta = header.get("__metadata__")
    if not isinstance(header_meta, dict):
        raise ModelFileError(f"{source}: not a vtrust model file (bad header)")
    meta_json, stored_hash = header_meta.get("vtrust"), header_meta.get("vtrust_sha256")
    if not isinstance(meta_json, str) or not isinstance(stored_hash, str):
        raise ModelFileError(f"{source}: not a vtrust model file (bad header)")
    actual = hashlib.sha256(meta_json.encode()).hexdigest()
    if not digests_equal(actual, stored_hash):
        raise ModelFileError(f"{source}: metadata checksum mismatch (file corrupted)")
    try:
        meta = parse_json(meta_json)
    except json.JSONDecodeError:
        raise ModelFileError(f"{source}: metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{source}: not a vtrust model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: model file version {meta.get('format_version')!r} is not supported "
            f"(this vtrust reads version {FORMAT_VERSION})"
        )
    return meta


def arch_record(meta: dict[str, Any], source: str) -> ArchRecord:
    """The architecture record of a file's metadata; ModelFileError if malformed."""
    arch = meta.get("arch")
    try:
        record = ArchRecord(
            arch["name"],
            tuple(int(d) for d in arch["input_shape"]),
            int(arch["n_classes"]),
            dict(arch["params"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{source}: architecture record is malformed") from None
    if not isinstance(record.name, str) or len(record.input_shape) != 3:
        raise ModelFileError(f"{source}: architecture record is malformed")
    return record


def _tensor(name: str, entry: Any, data: memoryview, source: str):
    try:
        code, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        shape = tuple(shape)
        valid = all(type(d) is int and d >= 0 for d in (*shape, start, end))
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid or code not in DTYPES:
        raise ModelFileError(f"{source}: malformed record for tensor {name!r}")
    dtype, itemsize = DTYPES[code]
    if end > len(data) or end - start != math.prod(shape) * itemsize:
        raise ModelFileError(f"{source}: corrupted tensor data ({name!r} out of bounds)")
    return name, dtype, shape, bytes(data[start:end])


def read_model_header(raw: bytes, source: str = "<bytes>") -> ModelHeader:
    """Check a model file's bytes (see the module docstring) without building a model.

    Raises:
        ModelFileError: truncated, corrupted or bit-flipped, of another format or format
            version, or with tensors that are not the recorded architecture's.
    """
    header, data_start = _safetensors_header(raw, source)
    meta = _metadata(header, source)
    arch = arch_record(meta, source)
    data = memoryview(raw)[data_start:]
    records = [_tensor(n, e, data, source) for n, e in header.items() if n != "__metadata__"]
    if not digests_equal(weights_digest(records), meta.get("weights_sha256")):
        raise ModelFileError(f"{source}: weights checksum mismatch (file corrupted)")
    try:
        expected = state_shapes(arch.name, arch.input_shape, arch.n_classes, arch.params)
    except InputError as exc:
        raise ModelFileError(f"{source}: cannot build the recorded architecture: {exc}") from None
    shapes = {name: shape for name, _, shape, _ in records}
    if shapes != expected:
        raise ModelFileError(f"{source}: weights do not fit architecture {arch.name!r}")
    return ModelHeader(meta, arch, shapes)
