"""Watermark keys: the owner's secret and what it determines, as versioned JSON files.

A key holds a secret of at least 128 bits (from :mod:`secrets`, or derived from an
explicit seed for reproducible experiments) and either

* a **static** part: the layer whose weights carry the mark and the message bits; the
  secret projection matrix is derived from the secret with HKDF-SHA256 and never stored;
* a **dynamic** part: the trigger inputs and their labels (the inputs live in a sidecar
  ``.npz`` beside the JSON, loaded without pickle).

``commitment`` is a SHA-256 over the canonical JSON of everything secret-dependent
(including the triggers' hash): publish it before a dispute, reveal the key in it.
A null calibration may be attached later; it is not part of the commitment.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vtrust._io import atomic_write_bytes, canonical_json, parse_json
from vtrust.errors import KeyFileError
from vtrust.watermark.stats import NullCalibration

KEY_FORMAT = "vtrust-watermark-key"
KEY_VERSION = 1
MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class StaticPart:
    """Which layer carries the mark, the message, and the regularizer strength λ."""

    layer: str
    bits: np.ndarray = field(repr=False)  # uint8 0/1
    strength: float = 0.05
    sharpness: float = 2.0

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "bits": "".join(map(str, self.bits.tolist())),
            "strength": self.strength,
            "sharpness": self.sharpness,
        }


@dataclass(frozen=True)
class DynamicPart:
    """The trigger set: ``inputs`` (N, C, H, W) in [0, 1] and their ``labels``."""

    style: Literal["noise", "content", "unrelated"]
    inputs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.inputs, dtype="<f4").tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        h.update(json.dumps(list(self.inputs.shape)).encode())
        return h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "style": self.style,
            "count": int(len(self.labels)),
            "input_shape": list(self.inputs.shape[1:]),
            "labels": self.labels.tolist(),
            "triggers_sha256": self.digest(),
        }


@dataclass(frozen=True)
class WatermarkKey:
    """A static or dynamic watermark key (exactly one part is set)."""

    secret: bytes = field(repr=False)
    static: StaticPart | None = None
    dynamic: DynamicPart | None = None
    owner: str = ""
    calibration: NullCalibration | None = None

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyFileError(f"a key secret needs at least {8 * MIN_SECRET_BYTES} bits")
        if (self.static is None) == (self.dynamic is None):
            raise KeyFileError("a key is either static or dynamic")

    @property
    def kind(self) -> str:
        return "static" if self.static is not None else "dynamic"

    def committed_json(self) -> dict[str, Any]:
        part = self.static.to_json() if self.static else self.dynamic.to_json()  # type: ignore[union-attr]
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "kind": self.kind,
            "owner": self.owner,
            "secret": self.secret.hex(),
            self.kind: part,
        }

    @property
    def commitment(self) -> str:
        """SHA-256 of the key's canonical JSON (publishable; reveals nothing of the key)."""
        return hashlib.sha256(canonical_json(self.committed_json()).encode()).hexdigest()

    def with_calibration(self, calibration: NullCalibration | None) -> WatermarkKey:
        return replace(self, calibration=calibration)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".triggers.npz")


def key_to_json(key: WatermarkKey) -> str:
    """The key file's JSON text (a dynamic key's trigger arrays go to the sidecar)."""
    doc = key.committed_json()
    doc["commitment"] = key.commitment
    if key.calibration is not None:
        doc["calibration"] = key.calibration.to_json()
    return canonical_json(doc)


def save_key(path: str | Path, key: WatermarkKey) -> Path:
    """Write the key JSON (and the trigger sidecar of a dynamic key) atomically."""
    target = Path(path)
    if key.dynamic is not None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            inputs=key.dynamic.inputs.astype(np.float32),
            labels=key.dynamic.labels.astype(np.int64),
        )
        atomic_write_bytes(_sidecar(target), buffer.getvalue())
    atomic_write_bytes(target, key_to_json(key).encode())
    return target


def _field(doc: dict, name: str, kind: type, source: str):
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise KeyFileError(f"{source}: key field '{name}' must be {kind.__name__}")
    return value


def load_key(path: str | Path) -> WatermarkKey:
    """Read and validate a key file; the commitment must match the content.

    Raises:
        KeyFileError: unreadable, malformed, wrong version, tampered (commitment mismatch).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{p}: not a JSON key file") from None
    return key_from_json(text, source=str(p), sidecar_of=p)


def key_from_json(text: str, *, source: str, sidecar_of: Path | None = None) -> WatermarkKey:
    """Parse and validate key JSON; dynamic keys need the path whose sidecar holds the
    triggers (``sidecar_of``)."""
    try:
        doc = parse_json(text)
    except json.JSONDecodeError:
        raise KeyFileError(f"{source}: not a JSON key file") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{source}: not a vtrust watermark key")
    if doc.get("version") != KEY_VERSION:
        raise KeyFileError(f"{source}: key version {doc.get('version')!r} is not supported")
    kind = doc.get("kind")
    try:
        secret = bytes.fromhex(_field(doc, "secret", str, source))
    except ValueError:
        raise KeyFileError(f"{source}: key field 'secret' is not hex") from None
    owner = _field(doc, "owner", str, source)
    part = _field(doc, str(kind), dict, source) if kind in ("static", "dynamic") else None
    if part is None:
        raise KeyFileError(f"{source}: key field 'kind' must be 'static' or 'dynamic'")
    try:
        if kind == "static":
            bits_text = _field(part, "bits", str, source)
            if not bits_text or set(bits_text) - {"0", "1"}:
                raise KeyFileError(f"{source}: static bits must be a string of 0s and 1s")
            static = StaticPart(
                layer=_field(part, "layer", str, source),
                bits=np.frombuffer(bits_text.encode(), dtype=np.uint8) - ord("0"),
                strength=float(_field(part, "strength", (int, float), source)),  # type: ignore[arg-type]
                sharpness=float(_field(part, "sharpness", (int, float), source)),  # type: ignore[arg-type]
            )
            key = WatermarkKey(secret=secret, static=static, owner=owner)
        else:
            if sidecar_of is None:
                raise KeyFileError(f"{source}: a dynamic key needs its trigger file")
            triggers = _load_triggers(sidecar_of, part, source)
            key = WatermarkKey(secret=secret, dynamic=triggers, owner=owner)
    except KeyFileError:
        raise
    except (TypeError, ValueError) as exc:
        raise KeyFileError(f"{source}: malformed key ({exc})") from None
    if not hmac.compare_digest(key.commitment, str(doc.get("commitment", ""))):
        raise KeyFileError(f"{source}: commitment mismatch (key file altered)")
    calibration = doc.get("calibration")
    if calibration is not None:
        scores = calibration.get("scores") if isinstance(calibration, dict) else None
        if not isinstance(scores, list) or not all(isinstance(s, (int, float)) for s in scores):
            raise KeyFileError(f"{source}: malformed calibration")
        key = key.with_calibration(NullCalibration(tuple(float(s) for s in scores)))
    return key


def _load_triggers(path: Path, part: dict, source: str) -> DynamicPart:
    sidecar = _sidecar(path)
    try:
        with np.load(sidecar, allow_pickle=False) as data:
            inputs = np.asarray(data["inputs"], dtype=np.float32)
            labels = np.asarray(data["labels"], dtype=np.int64)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise KeyFileError(f"{source}: cannot read trigger file {sidecar.name} ({exc})") from None
    if inputs.ndim != 4 or labels.shape != (len(inputs),):
        raise KeyFileError(f"{source}: trigger arrays have inconsistent shapes")
    style = _field(part, "style", str, source)
    if style not in ("noise", "content", "unrelated"):
        raise KeyFileError(f"{source}: unknown trigger style {style!r}")
    dynamic = DynamicPart(style, inputs, labels)  # type: ignore[arg-type]
    if not hmac.compare_digest(dynamic.digest(), str(part.get("triggers_sha256", ""))):
        raise KeyFileError(f"{source}: trigger file does not match the key")
    return dynamic
