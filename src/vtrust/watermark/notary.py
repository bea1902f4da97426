"""Dated commitments: a notary (a timestamp authority the verifier trusts) signs a key's
commitment with the time it saw it, so a dispute can show the key existed before the
suspect model did — and so was not ground to fit it.

A receipt is JSON: the commitment, the owner, the UTC time, the notary's key id and an
Ed25519 signature over the canonical JSON of the rest. The verifier holds the notary's
public key (its own side, never from the key file) and the date it first saw the
suspect; :func:`check_receipt` accepts a receipt only if the signature is the notary's,
the commitment is the key's and the time precedes that date.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vtrust._io import atomic_write_json, digests_equal, parse_json
from vtrust.errors import KeyFileError
from vtrust.keying import hkdf

RECEIPT_FORMAT = "vtrust-notary-receipt"
NOTARY_FORMAT = "vtrust-notary"


@dataclass(frozen=True)
class NotaryPublic:
    """What a verifier knows of a notary: its Ed25519 public key (hex)."""

    ed25519: str

    @property
    def key_id(self) -> str:
        return self.ed25519[:16]

    def to_json(self) -> dict[str, str]:
        return {"format": NOTARY_FORMAT + "-public", "ed25519": self.ed25519}


class Notary:
    """Signs commitments with the time (the simulated timestamp authority)."""

    def __init__(self, root: bytes) -> None:
        if len(root) < 16:
            raise KeyFileError("a notary secret needs at least 128 bits")
        self._root = root
        self._key = Ed25519PrivateKey.from_private_bytes(hkdf(root, "notary-ed25519"))

    @classmethod
    def generate(cls) -> Notary:
        return cls(secrets.token_bytes(32))

    @property
    def public(self) -> NotaryPublic:
        return NotaryPublic(self._key.public_key().public_bytes_raw().hex())

    def notarize(self, commitment: str, owner: str, *, when: datetime | None = None) -> dict:
        """A signed receipt dating ``commitment`` at ``when`` (now, UTC)."""
        stamp = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
        body = {
            "format": RECEIPT_FORMAT,
            "commitment": commitment,
            "owner": owner,
            "time": stamp.isoformat(timespec="seconds"),
            "notary": self.public.key_id,
        }
        return {**body, "signature": self._key.sign(_payload(body)).hex()}

    def save(self, path: str | Path) -> Path:
        """The private notary file (0600) and its public key beside it (``.pub.json``)."""
        path = Path(path)
        atomic_write_json(path, {"format": NOTARY_FORMAT, "root": self._root.hex()}, private=True)
        atomic_write_json(public_path(path), self.public.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Notary:
        doc = _read(path, "notary")
        if doc.get("format") != NOTARY_FORMAT or not isinstance(doc.get("root"), str):
            raise KeyFileError(f"{path}: not a vtrust notary file")
        try:
            return cls(bytes.fromhex(doc["root"]))
        except ValueError:
            raise KeyFileError(f"{path}: malformed notary secret") from None


def public_path(path: Path) -> Path:
    return path.with_name(path.stem + ".pub.json")


def load_public(path: str | Path) -> NotaryPublic:
    doc = _read(path, "notary public key")
    key = doc.get("ed25519")
    if doc.get("format") != NOTARY_FORMAT + "-public" or not isinstance(key, str):
        raise KeyFileError(f"{path}: not a vtrust notary public key")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
    except ValueError:
        raise KeyFileError(f"{path}: malformed notary public key") from None
    return NotaryPublic(key)


def _read(path: str | Path, what: str) -> dict:
    try:
        doc = parse_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError(f"{path}: cannot read the {what} ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"{path}: not a {what}")
    return doc


def _payload(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_time(text: str) -> datetime:
    """An ISO-8601 time; a naive one is taken as UTC. ValueError if malformed."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def check_receipt(
    receipt: Any, commitment: str, notary: NotaryPublic, suspect_seen: datetime
) -> str:
    """Why ``receipt`` does not date ``commitment`` before ``suspect_seen``: "" if it does."""
    if not isinstance(receipt, dict):
        return "the key carries no notary receipt"
    fields = ("format", "commitment", "owner", "time", "notary", "signature")
    if set(receipt) != set(fields) or not all(isinstance(receipt[f], str) for f in fields):
        return "malformed notary receipt"
    if receipt["format"] != RECEIPT_FORMAT or receipt["notary"] != notary.key_id:
        return "the receipt is not from this notary"
    if not digests_equal(commitment, receipt["commitment"]):
        return "the receipt dates another commitment"
    body = {f: receipt[f] for f in fields if f != "signature"}
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(notary.ed25519))
        key.verify(bytes.fromhex(receipt["signature"]), _payload(body))
        stamped = parse_time(receipt["time"])
    except (InvalidSignature, ValueError):
        return "bad notary signature"
    if stamped >= suspect_seen.astimezone(timezone.utc):
        return f"the commitment was dated {receipt['time']}, not before the suspect was seen"
    return ""
