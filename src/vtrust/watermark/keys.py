"""Watermark keys: the owner's secret and the parameters it is used with, as versioned
JSON files.

Everything an ownership test compares is **derived from the secret** and re-derived at
verification, never read from the file: a static key's message bits and projection, a
dynamic key's trigger inputs and labels. A key file therefore holds only the secret (≥
128 bits, from :mod:`secrets`) and public parameters:

* a **static** part: the layer whose weights carry the mark, the number of message bits,
  the regularizer's strength and how many weights each bit reads;
* a **dynamic** part: the trigger style, how many triggers, the input shape and the
  number of classes and — for ``content`` and ``entangled`` triggers, which stamp a
  secret pattern on ordinary images — the dataset those images are drawn from (a spec
  the verifier loads itself, and the data's SHA-256).

Someone who did not make the key cannot choose what it says: to forge ownership of a
model they must try secrets until one happens to fit (grinding), which the decision
threshold of :class:`~vtrust.watermark.verification.Verification` accounts for, and
which a dated commitment (:mod:`vtrust.watermark.notary`) rules out altogether.

``commitment`` is a SHA-256 over the canonical JSON of the key (secret included):
publish or notarise it at embedding time, reveal the key in a dispute. A null
calibration and a notary receipt may be attached later; neither is part of the
commitment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vtrust import keystream
from vtrust._io import atomic_write_bytes, canonical_json, digests_equal, parse_json
from vtrust.errors import KeyFileError
from vtrust.watermark.stats import NullCalibration

KEY_FORMAT = "vtrust-watermark-key"
KEY_VERSION = 2  # 2: message and triggers derived from the secret, never stored
MIN_SECRET_BYTES = 16
STYLES = ("noise", "content", "unrelated", "entangled")
DATA_STYLES = ("content", "entangled")  # the styles whose triggers stamp dataset images


@dataclass(frozen=True)
class StaticPart:
    """Which layer carries the mark, how many message bits, the regularizer's strength λ
    and sharpness, and ``support``: how many of the layer's weights each bit's secret
    projection reads (0: all of them, a dense projection — key files without the field
    are read so). The bits and the projection: :mod:`vtrust.watermark.static`."""

    layer: str
    bits: int
    strength: float = 0.05
    sharpness: float = 2.0
    support: int = 0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "layer": self.layer,
            "bits": self.bits,
            "strength": self.strength,
            "sharpness": self.sharpness,
        }
        if self.support:  # dense keys keep the JSON (and commitment) they always had
            doc["support"] = self.support
        return doc


@dataclass(frozen=True)
class TriggerData:
    """Where ``content`` and ``entangled`` triggers take their images from: a dataset
    spec and split seed the verifier loads itself, and the SHA-256 of the victim split's
    images."""

    spec: str
    split_seed: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "split_seed": self.split_seed, "sha256": self.sha256}


@dataclass(frozen=True)
class DynamicPart:
    """A trigger set's public parameters; the triggers: :mod:`vtrust.watermark.dynamic`."""

    style: Literal["noise", "content", "unrelated", "entangled"]
    count: int
    input_shape: tuple[int, int, int]
    n_classes: int
    data: TriggerData | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "style": self.style,
            "count": self.count,
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "data": None if self.data is None else self.data.to_json(),
        }


def data_sha256(x: np.ndarray) -> str:
    """The SHA-256 identifying an image array (shape and float32 bytes)."""
    h = hashlib.sha256(json.dumps(list(x.shape)).encode())
    h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class WatermarkKey:
    """A static or dynamic watermark key (exactly one part is set).

    ``insecure_seed`` records that the secret was derived from a seed (reproducible
    experiments): anyone who knows the seed can make the same key. ``receipt`` is a
    notary's dated signature over the commitment, if one was obtained."""

    secret: bytes = field(repr=False)
    static: StaticPart | None = None
    dynamic: DynamicPart | None = None
    owner: str = ""
    calibration: NullCalibration | None = None
    insecure_seed: int | None = None
    receipt: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise KeyFileError(f"a key secret needs at least {8 * MIN_SECRET_BYTES} bits")
        if (self.static is None) == (self.dynamic is None):
            raise KeyFileError("a key is either static or dynamic")
        if self.static is not None and self.static.bits < 1:
            raise KeyFileError("a static key carries at least one bit")
        if self.dynamic is not None:
            d = self.dynamic
            if d.style not in STYLES or d.count < 1 or d.n_classes < 2:
                raise KeyFileError("a dynamic key needs a known style, ≥ 1 trigger, ≥ 2 classes")
            if len(d.input_shape) != 3 or min(d.input_shape) < 1:
                raise KeyFileError("a dynamic key's input shape is (C, H, W)")
            if (d.style in DATA_STYLES) != (d.data is not None):
                raise KeyFileError(
                    "content and entangled triggers (and only they) name their dataset"
                )

    @property
    def kind(self) -> str:
        return "static" if self.static is not None else "dynamic"

    def stream(self, purpose: str) -> keystream.KeyStream:
        """The key's keystream for one purpose (message, projection, triggers …)."""
        return keystream.derived(self.secret, f"watermark:{purpose}")

    def message(self) -> np.ndarray:
        """A static key's message bits (uint8 0/1), derived from the secret."""
        if self.static is None:
            raise KeyFileError("only static keys carry a message")
        return self.stream("static-message").below(2, self.static.bits).astype(np.uint8)

    def committed_json(self) -> dict[str, Any]:
        part = self.static.to_json() if self.static else self.dynamic.to_json()  # type: ignore[union-attr]
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "kind": self.kind,
            "owner": self.owner,
            "secret": self.secret.hex(),
            "insecure_seed": self.insecure_seed,
            self.kind: part,
        }

    @property
    def commitment(self) -> str:
        """SHA-256 of the key's canonical JSON (publishable; reveals nothing of the key)."""
        return hashlib.sha256(canonical_json(self.committed_json()).encode()).hexdigest()

    def with_calibration(self, calibration: NullCalibration | None) -> WatermarkKey:
        return replace(self, calibration=calibration)

    def with_receipt(self, receipt: dict[str, Any] | None) -> WatermarkKey:
        return replace(self, receipt=receipt)


def key_to_json(key: WatermarkKey) -> str:
    """The key file's JSON text."""
    doc = key.committed_json()
    doc["commitment"] = key.commitment
    if key.calibration is not None:
        doc["calibration"] = key.calibration.to_json()
    if key.receipt is not None:
        doc["receipt"] = key.receipt
    return canonical_json(doc)


def save_key(path: str | Path, key: WatermarkKey) -> Path:
    """Write the key JSON atomically, readable by its owner only (it holds the secret)."""
    return atomic_write_bytes(path, key_to_json(key).encode(), private=True)


def _field(doc: dict, name: str, kind: type | tuple[type, ...], source: str):
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        label = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise KeyFileError(f"{source}: key field '{name}' must be {label}")
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
    return key_from_json(text, source=str(p))


def _static_part(part: dict, source: str) -> StaticPart:
    return StaticPart(
        layer=_field(part, "layer", str, source),
        bits=_field(part, "bits", int, source),
        strength=float(_field(part, "strength", (int, float), source)),
        sharpness=float(_field(part, "sharpness", (int, float), source)),
        support=_support(part, source),
    )


def _support(part: dict, source: str) -> int:
    support = part.get("support", 0)
    if type(support) is not int or support < 0:
        raise KeyFileError(f"{source}: key field 'support' must be a non-negative integer")
    return support


def _dynamic_part(part: dict, source: str) -> DynamicPart:
    shape = _field(part, "input_shape", list, source)
    if len(shape) != 3 or not all(type(v) is int for v in shape):
        raise KeyFileError(f"{source}: key field 'input_shape' must be three integers")
    data = part.get("data")
    trigger_data = None
    if data is not None:
        if not isinstance(data, dict):
            raise KeyFileError(f"{source}: key field 'data' must be an object")
        trigger_data = TriggerData(
            _field(data, "spec", str, source),
            _field(data, "split_seed", int, source),
            _field(data, "sha256", str, source),
        )
    return DynamicPart(
        style=_field(part, "style", str, source),  # type: ignore[arg-type]
        count=_field(part, "count", int, source),
        input_shape=tuple(shape),  # type: ignore[arg-type]
        n_classes=_field(part, "n_classes", int, source),
        data=trigger_data,
    )


def key_from_json(text: str, *, source: str) -> WatermarkKey:
    """Parse and validate key JSON (:class:`KeyFileError` on anything wrong)."""
    try:
        doc = parse_json(text)
    except json.JSONDecodeError:
        raise KeyFileError(f"{source}: not a JSON key file") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{source}: not a vtrust watermark key")
    if doc.get("version") != KEY_VERSION:
        raise KeyFileError(
            f"{source}: key version {doc.get('version')!r} is not supported (this vtrust "
            f"reads {KEY_VERSION}; version-1 keys stored forgeable bits: re-embed)"
        )
    kind = doc.get("kind")
    try:
        secret = bytes.fromhex(_field(doc, "secret", str, source))
    except ValueError:
        raise KeyFileError(f"{source}: key field 'secret' is not hex") from None
    owner = _field(doc, "owner", str, source)
    seed = doc.get("insecure_seed")
    if seed is not None and type(seed) is not int:
        raise KeyFileError(f"{source}: key field 'insecure_seed' must be an integer or null")
    part = _field(doc, str(kind), dict, source) if kind in ("static", "dynamic") else None
    if part is None:
        raise KeyFileError(f"{source}: key field 'kind' must be 'static' or 'dynamic'")
    try:
        if kind == "static":
            key = WatermarkKey(secret, static=_static_part(part, source), owner=owner,
                               insecure_seed=seed)  # fmt: skip
        else:
            key = WatermarkKey(secret, dynamic=_dynamic_part(part, source), owner=owner,
                               insecure_seed=seed)  # fmt: skip
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise KeyFileError(f"{source}: malformed key ({exc})") from None
    if not digests_equal(key.commitment, doc.get("commitment")):
        raise KeyFileError(f"{source}: commitment mismatch (key file altered)")
    calibration = doc.get("calibration")
    if calibration is not None:
        scores = calibration.get("scores") if isinstance(calibration, dict) else None
        if (
            not isinstance(scores, list)
            or len(scores) < 2
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)
        ):
            raise KeyFileError(f"{source}: malformed calibration")
        key = key.with_calibration(NullCalibration(tuple(float(s) for s in scores)))
    receipt = doc.get("receipt")
    if receipt is not None:
        if not isinstance(receipt, dict):
            raise KeyFileError(f"{source}: malformed notary receipt")
        key = key.with_receipt(receipt)
    return key
