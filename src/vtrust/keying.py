"""Secrets and what is derived from them: fresh secrets, HKDF-SHA256 derivations, and
protection key files (the keys of weight scrambling and sealed model files).

Secrets come from :mod:`secrets`; only an explicit ``seed`` (experiments, tests) makes
one reproducible. A key file is JSON holding the secret in hex and its fingerprint (a
hash that identifies the key without revealing it); keys are compared in constant time
and never printed — :class:`ProtectionKey`'s ``repr`` hides the secret.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vtrust._io import atomic_write_text, canonical_json, digests_equal, parse_json
from vtrust.errors import KeyFileError

KEY_FORMAT = "vtrust-protection-key"
KEY_VERSION = 1
MIN_SECRET_BYTES = 16  # 128 bits


def new_secret(seed: int | None = None) -> bytes:
    """32 random bytes from :mod:`secrets`; only an explicit ``seed`` makes them reproducible."""
    if seed is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(f"vtrust-test-secret:{seed}".encode()).digest()


def hkdf(secret: bytes, info: str, length: int = 32, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 of ``secret`` for one purpose (``info``)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=salt, info=f"vtrust:{info}".encode()
    ).derive(secret)


@dataclass(frozen=True)
class ProtectionKey:
    """A ≥ 128-bit secret for scrambling or sealing. ``device`` names the device a
    per-device key was derived for (empty for a master key)."""

    secret: bytes = field(repr=False)
    device: str = ""

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyFileError(f"a protection key needs at least {8 * MIN_SECRET_BYTES} bits")

    @classmethod
    def generate(cls, seed: int | None = None) -> ProtectionKey:
        return cls(new_secret(seed))

    @property
    def fingerprint(self) -> str:
        """Identifies the key (16 hex digits of a keyed hash); reveals nothing of it."""
        return hkdf(self.secret, "fingerprint", 8).hex()

    def for_device(self, device_id: str) -> ProtectionKey:
        """The per-device key HKDF(master, "device:<id>"): each device's copy differs."""
        if not device_id:
            raise KeyFileError("a device id is needed to derive a device key")
        return ProtectionKey(hkdf(self.secret, f"device:{device_id}"), device=device_id)

    def matches(self, fingerprint: object) -> bool:
        """Constant-time comparison of this key's fingerprint with a recorded one."""
        return digests_equal(self.fingerprint, fingerprint)

    def to_json(self) -> dict[str, object]:
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "secret": self.secret.hex(),
            "device": self.device,
            "fingerprint": self.fingerprint,
        }


def save_protection_key(path: str | Path, key: ProtectionKey) -> Path:
    """Write ``key`` as JSON, atomically. Keep the file private."""
    return atomic_write_text(path, canonical_json(key.to_json()), private=True)


def load_protection_key(path: str | Path) -> ProtectionKey:
    """Read a key file; :class:`~vtrust.errors.KeyFileError` on anything malformed."""
    path = Path(path)
    try:
        doc = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a JSON key file ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{path}: not a vtrust protection key")
    if doc.get("version") != KEY_VERSION:
        raise KeyFileError(f"{path}: key version {doc.get('version')!r} (this vtrust reads 1)")
    try:
        secret = bytes.fromhex(str(doc["secret"]))
        key = ProtectionKey(secret, device=str(doc.get("device", "")))
    except (KeyError, ValueError) as exc:
        raise KeyFileError(f"{path}: malformed secret ({exc.__class__.__name__})") from None
    if not key.matches(doc.get("fingerprint")):
        raise KeyFileError(f"{path}: the key's fingerprint does not match its secret")
    return key
