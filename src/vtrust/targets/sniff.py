"""What a model file is, told by its content (never by its name).

:func:`sniff` reads magic numbers and container structure only; it never parses a
pickle. Formats: ``vtrust`` (safetensors with vtrust metadata), ``safetensors`` (a plain
state dict), ``torchscript``, ``torch-export`` (``.pt2``), ``torch-save`` (a
``torch.save`` archive: a state dict, or a pickled module that is refused), ``pickle``
(refused), ``onnx``, ``tflite``, ``npz`` (a data file, not a model),
``damaged-safetensors`` (a safetensors header that does not parse), or ``unknown``.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

_PICKLE_PROTOCOLS = {bytes([0x80, n]) for n in range(2, 6)}


def _zip_kind(raw: bytes) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "unknown"
    tails = {name.split("/", 1)[-1] for name in names}
    if any(t.startswith("code/") for t in tails) and "data.pkl" in tails:
        return "torchscript"
    if "models/model.json" in tails or any(t.startswith("models/") for t in tails):
        return "torch-export"
    if "data.pkl" in tails:
        return "torch-save"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "unknown"


def _safetensors_kind(raw: bytes) -> str | None:
    if len(raw) < 10:
        return None
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > len(raw) - 8 or raw[8:9] != b"{":
        return None
    try:
        header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "damaged-safetensors"
    if not isinstance(header, dict):
        return "damaged-safetensors"
    meta = header.get("__metadata__")
    return "vtrust" if isinstance(meta, dict) and "vtrust" in meta else "safetensors"


def _looks_like_onnx(raw: bytes) -> bool:
    """ModelProto starts with field 1 (ir_version, a varint: tag 0x08); protobuf has no
    magic number, so the onnx parser has the last word."""
    return len(raw) > 16 and raw[0] == 0x08


def sniff(raw: bytes) -> str:
    """The format of a model file's bytes (see the module docstring)."""
    if len(raw) >= 8 and raw[4:8] == b"TFL3":
        return "tflite"
    if raw[:4] == b"PK\x03\x04":
        return _zip_kind(raw)
    kind = _safetensors_kind(raw)  # before pickle: a header length can start 0x80 0x02
    if kind is not None:
        return kind
    if raw[:2] in _PICKLE_PROTOCOLS:
        return "pickle"
    if _looks_like_onnx(raw):
        return "onnx"
    return "unknown"
