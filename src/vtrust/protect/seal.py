"""Sealed files: authenticated encryption of a model file at rest (AES-256-GCM).

Layout::

    b"VTSEAL\\x00\\x01" | header length (4 bytes, big-endian) | header JSON | ciphertext+tag

The header (format, version, cipher, KDF, salt, nonce, the key's fingerprint and the
caller's metadata) is authenticated as associated data, so it cannot be changed either.
The file key is HKDF-SHA256(key, salt = 16 random bytes): every file has its own key,
and a 96-bit random nonce. Opening checks everything before returning a byte: any
change to any bit, a truncation or a wrong key raises :class:`~vtrust.errors.SealError`
with one message — GCM cannot tell tampering from a wrong key, and the message says so.
Outputs are written atomically, only after the tag has verified.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vtrust._io import atomic_write_bytes, parse_json
from vtrust.errors import SealError
from vtrust.keying import ProtectionKey, hkdf
from vtrust.models.files import LoadedModel, load_model_bytes

MAGIC = b"VTSEAL\x00\x01"
FORMAT = "vtrust-sealed"
VERSION = 1
CIPHER = "AES-256-GCM"
KDF = "HKDF-SHA256"
REJECTED = "sealed file rejected: tampered with, truncated, or the wrong key"
_MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class Sealed:
    """An opened sealed file: the plaintext and the authenticated header metadata."""

    data: bytes
    metadata: dict[str, Any]


def seal_bytes(data: bytes, key: ProtectionKey, metadata: dict[str, Any] | None = None) -> bytes:
    """Encrypt ``data``; ``metadata`` (JSON-able) travels in clear but authenticated."""
    salt, nonce = os.urandom(16), os.urandom(12)
    header = json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "cipher": CIPHER,
            "kdf": KDF,
            "salt": salt.hex(),
            "nonce": nonce.hex(),
            "key_fingerprint": key.fingerprint,
            "metadata": metadata or {},
        },
        sort_keys=True,
        allow_nan=False,
    ).encode()
    prefix = MAGIC + struct.pack(">I", len(header)) + header
    cipher = AESGCM(hkdf(key.secret, "seal:v1", 32, salt=salt))
    return prefix + cipher.encrypt(nonce, data, prefix)


def open_bytes(blob: bytes, key: ProtectionKey) -> Sealed:
    """Decrypt and authenticate a sealed blob, or :class:`SealError`."""
    try:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
            raise ValueError("magic")
        (size,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        if size > _MAX_HEADER or start + size > len(blob):
            raise ValueError("header length")
        prefix = blob[: start + size]
        header = parse_json(prefix[start:])
        if (
            not isinstance(header, dict)
            or header.get("format") != FORMAT
            or header.get("version") != VERSION
            or header.get("cipher") != CIPHER
            or header.get("kdf") != KDF
        ):
            raise ValueError("header fields")
        salt, nonce = bytes.fromhex(header["salt"]), bytes.fromhex(header["nonce"])
        if len(salt) != 16 or len(nonce) != 12:
            raise ValueError("salt or nonce length")
        cipher = AESGCM(hkdf(key.secret, "seal:v1", 32, salt=salt))
        data = cipher.decrypt(nonce, blob[start + size :], prefix)
    except (InvalidTag, ValueError, KeyError, TypeError, struct.error):
        raise SealError(REJECTED) from None
    metadata = header.get("metadata")
    return Sealed(data, metadata if isinstance(metadata, dict) else {})


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SealError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None


def seal_file(
    source: str | Path, target: str | Path, key: ProtectionKey, metadata: dict | None = None
) -> Path:
    """Seal the file ``source`` into ``target`` (atomic)."""
    return atomic_write_bytes(target, seal_bytes(_read(source), key, metadata))


def unseal_file(source: str | Path, target: str | Path, key: ProtectionKey) -> Sealed:
    """Open ``source`` and write the plaintext to ``target`` — only if it authenticated."""
    opened = open_bytes(_read(source), key)
    atomic_write_bytes(target, opened.data)
    return opened


def load_sealed_model(path: str | Path, key: ProtectionKey) -> LoadedModel:
    """Decrypt a sealed model file in memory and load it (no plaintext touches disk)."""
    return load_model_bytes(open_bytes(_read(path), key).data, source=str(path))
