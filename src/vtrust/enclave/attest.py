"""Attestation: a quote signs an enclave's measurement together with a verifier's nonce.

Each device has an attestation identity: an Ed25519 key (the default, one quote at a
time) and a BLS12-381 key (for fleets: one aggregate signature covers many devices'
quotes and is checked in one call). The verifier knows the devices' public keys and
the measurement it expects; it issues fresh nonces and accepts each at most once, so a
recorded quote cannot be replayed. Every failure — unknown device, bad signature,
changed model part (hence measurement), wrong measurement, stale or replayed nonce,
malformed quote — raises :class:`~vtrust.errors.AttestationError`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vtrust._io import digests_equal
from vtrust.enclave._bls import bls
from vtrust.errors import AttestationError
from vtrust.keying import hkdf, new_secret

QUOTE_FORMAT = "vtrust-quote"
QUOTE_VERSION = 1
Scheme = Literal["ed25519", "bls12-381"]


@dataclass(frozen=True)
class DevicePublic:
    """What a verifier knows of a device: its id and public attestation keys (hex)."""

    device: str
    ed25519: str
    bls: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> DevicePublic:
        try:
            out = cls(str(doc["device"]), str(doc["ed25519"]), str(doc["bls"]))
            bytes.fromhex(out.ed25519), bytes.fromhex(out.bls)
        except (KeyError, TypeError, ValueError):
            raise AttestationError("malformed device public key record") from None
        return out


class DeviceIdentity:
    """A device's attestation keys, derived from its private ``root`` (32 bytes)."""

    def __init__(self, device: str, root: bytes) -> None:
        if not device:
            raise AttestationError("a device needs an id")
        if len(root) < 16:
            raise AttestationError("a device root secret needs at least 128 bits")
        self.device = device
        self._root = root
        self._ed25519 = Ed25519PrivateKey.from_private_bytes(hkdf(root, f"attest-ed:{device}"))
        self._bls = bls.KeyGen(hkdf(root, f"attest-bls:{device}"))

    @classmethod
    def generate(cls, device: str, seed: int | None = None) -> DeviceIdentity:
        """A new identity (from :mod:`secrets` unless ``seed`` is given)."""
        return cls(device, new_secret(seed) if seed is not None else secrets.token_bytes(32))

    def private_json(self) -> dict[str, str]:
        """The identity as a private record (the simulated device's fused secret)."""
        return {"format": "vtrust-device-identity", "device": self.device, "root": self._root.hex()}

    @classmethod
    def from_json(cls, doc: Any) -> DeviceIdentity:
        if not isinstance(doc, dict) or doc.get("format") != "vtrust-device-identity":
            raise AttestationError("not a vtrust device identity")
        try:
            return cls(str(doc["device"]), bytes.fromhex(str(doc["root"])))
        except (KeyError, ValueError):
            raise AttestationError("malformed device identity") from None

    @property
    def public(self) -> DevicePublic:
        raw = self._ed25519.public_key().public_bytes_raw()
        return DevicePublic(self.device, raw.hex(), bytes(bls.SkToPk(self._bls)).hex())

    def quote(self, measurement: str, nonce: str, scheme: Scheme = "ed25519") -> Quote:
        """Sign (measurement, nonce) for this device."""
        unsigned = Quote(self.device, measurement, nonce, scheme, "")
        payload = unsigned.payload()
        if scheme == "ed25519":
            signature = self._ed25519.sign(payload)
        elif scheme == "bls12-381":
            signature = bytes(bls.Sign(self._bls, payload))
        else:
            raise AttestationError(f"unknown signature scheme {scheme!r}")
        return Quote(self.device, measurement, nonce, scheme, signature.hex())


@dataclass(frozen=True)
class Quote:
    device: str
    measurement: str
    nonce: str
    scheme: str
    signature: str  # hex; empty inside a fleet quote (the aggregate covers it)

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON of everything but the signature."""
        body = {
            "format": QUOTE_FORMAT,
            "version": QUOTE_VERSION,
            "device": self.device,
            "measurement": self.measurement,
            "nonce": self.nonce,
        }
        return json.dumps(body, sort_keys=True).encode()

    def to_json(self) -> dict[str, Any]:
        return {"format": QUOTE_FORMAT, "version": QUOTE_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> Quote:
        if not isinstance(doc, dict) or doc.get("format") != QUOTE_FORMAT:
            raise AttestationError("not a vtrust quote")
        if doc.get("version") != QUOTE_VERSION:
            raise AttestationError(f"quote version {doc.get('version')!r} is not supported")
        fields = ("device", "measurement", "nonce", "scheme", "signature")
        if not all(isinstance(doc.get(f), str) for f in fields):
            raise AttestationError("malformed quote: missing or non-string fields")
        return cls(*(doc[f] for f in fields))


@dataclass(frozen=True)
class FleetQuote:
    """Many devices' BLS quotes under one aggregate signature."""

    quotes: tuple[Quote, ...]
    signature: str


def aggregate(quotes: list[Quote]) -> FleetQuote:
    """Combine BLS quotes (one per device) into a :class:`FleetQuote`."""
    if not quotes or any(q.scheme != "bls12-381" for q in quotes):
        raise AttestationError("a fleet quote aggregates one or more BLS12-381 quotes")
    try:
        signature = bls.Aggregate([bytes.fromhex(q.signature) for q in quotes])
    except Exception:  # py_ecc raises assorted errors for malformed points
        raise AttestationError("malformed BLS signature in the fleet") from None
    bare = tuple(Quote(q.device, q.measurement, q.nonce, q.scheme, "") for q in quotes)
    return FleetQuote(bare, bytes(signature).hex())


class QuoteVerifier:
    """Checks quotes against known devices and the expected measurement; issues nonces
    and accepts each once."""

    def __init__(self, devices: list[DevicePublic], expected_measurement: str) -> None:
        self.devices = {d.device: d for d in devices}
        self.expected = expected_measurement
        self._outstanding: set[str] = set()

    def challenge(self) -> str:
        """A fresh nonce (128 bits, hex) for the next quote."""
        nonce = secrets.token_hex(16)
        self._outstanding.add(nonce)
        return nonce

    def expect(self, nonce: str) -> None:
        """Register a nonce issued earlier (e.g. by another run of the verifier)."""
        self._outstanding.add(str(nonce))

    def _device(self, quote: Quote) -> DevicePublic:
        device = self.devices.get(quote.device)
        if device is None:
            raise AttestationError(f"unknown device {quote.device!r}")
        return device

    def _accept(self, quote: Quote) -> None:
        if not digests_equal(self.expected, quote.measurement):
            raise AttestationError("wrong measurement: the enclave's code or model part differs")
        if quote.nonce not in self._outstanding:
            raise AttestationError("stale or replayed nonce: it was not issued or was used")

    def verify(self, quote: Quote) -> None:
        """Accept ``quote`` (consuming its nonce) or raise :class:`AttestationError`."""
        device = self._device(quote)
        try:
            signature = bytes.fromhex(quote.signature)
            if quote.scheme == "ed25519":
                key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(device.ed25519))
                key.verify(signature, quote.payload())
            elif quote.scheme == "bls12-381":
                if not bls.Verify(bytes.fromhex(device.bls), quote.payload(), signature):
                    raise InvalidSignature
            else:
                raise AttestationError(f"unknown signature scheme {quote.scheme!r}")
        except (InvalidSignature, ValueError):
            raise AttestationError("bad signature on the quote") from None
        except AttestationError:
            raise
        except Exception:  # malformed BLS points
            raise AttestationError("bad signature on the quote") from None
        self._accept(quote)
        self._outstanding.discard(quote.nonce)

    def verify_fleet(self, fleet: FleetQuote) -> None:
        """Accept every quote of a fleet with one aggregate check, or reject them all."""
        devices = [self._device(q) for q in fleet.quotes]
        if len({q.device for q in fleet.quotes}) != len(fleet.quotes):
            raise AttestationError("a fleet quote names a device twice")
        if len({q.nonce for q in fleet.quotes}) != len(fleet.quotes):
            raise AttestationError("a fleet quote reuses a nonce")
        for quote in fleet.quotes:
            self._accept(quote)
        try:
            ok = bls.AggregateVerify(
                [bytes.fromhex(d.bls) for d in devices],
                [q.payload() for q in fleet.quotes],
                bytes.fromhex(fleet.signature),
            )
        except Exception:
            ok = False
        if not ok:
            raise AttestationError("bad aggregate signature on the fleet quote")
        for quote in fleet.quotes:
            self._outstanding.discard(quote.nonce)
