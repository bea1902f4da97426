"""Pay-per-query metering inside the enclave: sealed, monotonic, signed usage counters.

The TinyMLOps setting: the model runs on a device its owner (the *host*) controls, and
the model's owner sells queries. No answer-changing defense stops an in-distribution,
label-only thief, so every answer is counted where the host cannot reach the count.

Inside the enclave (this module is measured, see :mod:`vtrust.enclave.runtime`) a
:class:`MeterCore` keeps the device's usage: answers given (``count``), the budget the
owner granted (``limit``), the number of the last usage report (``seq``) and its digest
(``head``). It answers only while ``count + n ≤ limit``, and before any answer leaves it
re-seals its state, so the host always holds the newest sealed state and a crash never
loses a count. Three things the host might try, and what catches each:

* **Rollback** — restarting the enclave from an older sealed state to get its budget
  back. With a platform monotonic counter (a TPM NV counter or a TEE's; simulated by
  :class:`PlatformCounter`) every seal increments it and the sealed state records the
  value, so an older state is refused at once (:class:`RollbackDetected`). Without one
  the enclave cannot tell, but its reports form a hash chain: the next report a rolled
  back enclave signs repeats a sequence number the owner already holds with another
  digest (or does not extend the owner's head), and the owner's reconciliation names it.
* **Replay** — delivering an old report again instead of a new one: the owner has that
  report already (same sequence number, same digest).
* **Skip** — withholding a report: the next one's sequence number leaves a gap.

Reports are signed with an Ed25519 key the enclave generates (from :mod:`secrets`) when
it is provisioned; only the sealed state holds it. Budget grants are signed by the
owner's key (:class:`~vtrust.enclave.usage_ledger.UsageLedger`), set an absolute limit
and name the report they answer, so a grant applies to one enclave state only: a
rolled-back enclave cannot use a grant issued after its state, and applying a grant
again changes nothing. Everything
crosses as canonical JSON; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vtrust.errors import EnclaveError, MeteringError, VtrustError

REPORT_FORMAT = "vtrust-usage-report"
GRANT_FORMAT = "vtrust-budget-grant"
STATE_FORMAT = "vtrust-meter-state"
VERSION = 1


class RollbackDetected(EnclaveError):
    """The enclave was handed a sealed meter state older than its platform counter."""


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def genesis(device: str) -> str:
    """The chain head before a device's first report."""
    return hashlib.sha256(f"vtrust-usage-genesis/1\x00{device}".encode()).hexdigest()


def _public_key(hex_key: str, what: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))
    except ValueError:
        raise MeteringError(f"malformed {what} public key") from None


def _fields(doc: Any, fmt: str, spec: dict[str, type], what: str) -> dict[str, Any]:
    """The fields of a JSON record, checked for format, version and exact types."""
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise MeteringError(f"not a vtrust {what}")
    if doc.get("version") != VERSION:
        raise MeteringError(f"{what} version {doc.get('version')!r} is not supported")
    out = {}
    for name, kind in spec.items():
        value = doc.get(name)
        if type(value) is not kind or (kind is int and value < 0):
            raise MeteringError(f"malformed {what}: field {name!r}")
        out[name] = value
    return out


@dataclass(frozen=True)
class UsageReport:
    """One signed usage report: the device's cumulative answer ``count`` and granted
    ``limit`` at report number ``seq``, chained to the previous report's digest
    ``prev``; ``nonce`` is fresh enclave randomness, so a rolled-back enclave cannot
    re-sign a report identical to one it signed before."""

    device: str
    seq: int
    count: int
    limit: int
    prev: str
    nonce: str
    signature: str = ""

    _SPEC = {"device": str, "seq": int, "count": int, "limit": int, "prev": str,
             "nonce": str, "signature": str}  # fmt: skip

    def payload(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return _canonical({"format": REPORT_FORMAT, "version": VERSION, **body})

    @property
    def digest(self) -> str:
        """What the next report's ``prev`` names (over the payload and signature)."""
        return hashlib.sha256(self.payload() + bytes.fromhex(self.signature)).hexdigest()

    def verify(self, public_hex: str) -> None:
        """:class:`MeteringError` unless the device key ``public_hex`` signed it."""
        try:
            _public_key(public_hex, "device").verify(bytes.fromhex(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            raise MeteringError(
                f"usage report {self.seq} of {self.device}: bad signature"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> UsageReport:
        report = cls(**_fields(doc, REPORT_FORMAT, cls._SPEC, "usage report"))
        try:
            bytes.fromhex(report.signature), bytes.fromhex(report.prev)
        except ValueError:
            raise MeteringError("malformed usage report: hex fields") from None
        return report


@dataclass(frozen=True)
class BudgetGrant:
    """The owner's signed permission for ``device`` to answer up to ``limit`` queries in
    all (an absolute limit: applying a grant twice changes nothing), valid only on the
    enclave state that signed the report with digest ``after`` (the genesis digest
    before the first report)."""

    device: str
    limit: int
    after: str
    signature: str = ""

    _SPEC = {"device": str, "limit": int, "after": str, "signature": str}

    def payload(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return _canonical({"format": GRANT_FORMAT, "version": VERSION, **body})

    def to_json(self) -> dict[str, Any]:
        return {"format": GRANT_FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> BudgetGrant:
        return cls(**_fields(doc, GRANT_FORMAT, cls._SPEC, "budget grant"))


class PlatformCounter:
    """A simulated platform monotonic counter (a TPM NV counter): the host may read it,
    and only the enclave increments it; it never goes back."""

    def __init__(self) -> None:
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    def increment(self) -> int:
        self._value += 1
        return self._value


@dataclass
class MeterState:
    """What the sealed meter state holds (the signing key never leaves it)."""

    device: str
    owner: str  # the owner's Ed25519 public key (hex): the only grant signer accepted
    signing_key: str  # the enclave's Ed25519 private key (hex)
    count: int = 0
    limit: int = 0
    seq: int = 0
    head: str = ""
    platform: int = 0  # the platform counter's value when this state was sealed

    def to_bytes(self) -> bytes:
        return _canonical({"format": STATE_FORMAT, "version": VERSION, **asdict(self)})

    @classmethod
    def from_bytes(cls, data: bytes) -> MeterState:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise MeteringError("sealed meter state is not JSON") from None
        spec = {"device": str, "owner": str, "signing_key": str, "count": int, "limit": int,
                "seq": int, "head": str, "platform": int}  # fmt: skip
        return cls(**_fields(doc, STATE_FORMAT, spec, "meter state"))


class MeterCore:
    """The meter as it runs inside the enclave (held in the enclave's private state)."""

    def __init__(self, state: MeterState, counter: PlatformCounter | None) -> None:
        self.state = state
        self.counter = counter
        self._key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(state.signing_key))
        self._owner = _public_key(state.owner, "owner")

    @classmethod
    def provision(cls, device: str, owner_public: str, counter: PlatformCounter | None):
        """A new meter with a fresh signing key and no budget."""
        _public_key(owner_public, "owner")
        key = Ed25519PrivateKey.generate()  # the OS CSPRNG
        raw = key.private_bytes_raw().hex()
        return cls(MeterState(device, owner_public, raw, head=genesis(device)), counter)

    @classmethod
    def restore(cls, state: MeterState, counter: PlatformCounter | None) -> MeterCore:
        """The meter from its unsealed state; :class:`RollbackDetected` if the platform
        counter has moved past the value the state was sealed at."""
        if counter is not None and state.platform != counter.value:
            raise RollbackDetected(
                f"sealed meter state of {state.device} is from platform counter "
                f"{state.platform}, the counter is at {counter.value}: an old state was restored"
            )
        return cls(state, counter)

    @property
    def public_key(self) -> str:
        return self._key.public_key().public_bytes_raw().hex()

    def remaining(self) -> int:
        return self.state.limit - self.state.count

    def charge(self, n: int) -> int:
        """Count up to ``n`` answers within the budget; how many may be given."""
        allowed = max(0, min(n, self.remaining()))
        self.state.count += allowed
        return allowed

    def stamp(self) -> bytes:
        """The state to seal: the platform counter moves first, so the state just
        sealed is the only one a restart accepts."""
        if self.counter is not None:
            self.state.platform = self.counter.increment()
        return self.state.to_bytes()

    def report(self) -> UsageReport:
        """Sign the next usage report and advance the chain."""
        s = self.state
        unsigned = UsageReport(s.device, s.seq + 1, s.count, s.limit, s.head,
                               secrets.token_hex(16))  # fmt: skip
        signed = UsageReport(
            **{**asdict(unsigned), "signature": self._key.sign(unsigned.payload()).hex()}
        )
        s.seq, s.head = signed.seq, signed.digest
        return signed

    def apply(self, grant: BudgetGrant) -> None:
        """Raise the budget as the owner's ``grant`` says, or :class:`MeteringError`."""
        s = self.state
        try:
            self._owner.verify(bytes.fromhex(grant.signature), grant.payload())
        except (InvalidSignature, ValueError):
            raise MeteringError("budget grant: not signed by the owner") from None
        if grant.device != s.device:
            raise MeteringError(f"budget grant for {grant.device!r}, this is {s.device!r}")
        if grant.after != s.head:
            raise MeteringError("budget grant answers another report than this meter's last")
        if grant.limit < s.limit:
            raise MeteringError("budget grant lowers the limit")
        s.limit = grant.limit


# --- entry points (measured: the enclave runs nothing else) ---------------------------


def meter_provision(inside, device: str, owner_public: str, counter) -> tuple[str, bytes]:
    """Provision a meter; its public key and the sealed state."""
    core = MeterCore.provision(device, owner_public, counter)
    inside.state["meter"] = core
    return core.public_key, inside.seal(core.stamp())


def meter_resume(inside, sealed: bytes, counter) -> str:
    """Reopen a meter from sealed state (after a restart); its public key."""
    try:
        state = MeterState.from_bytes(inside.unseal(sealed))
    except VtrustError as exc:
        raise MeteringError(f"cannot reopen the meter: {exc}") from None
    core = MeterCore.restore(state, counter)
    inside.state["meter"] = core
    return core.public_key


def _core(inside) -> MeterCore:
    core = inside.state.get("meter")
    if core is None:
        raise EnclaveError("the meter is not provisioned or resumed")
    return core


def meter_answer(inside, x) -> tuple[Any, bytes, int]:
    """Answer the rows of ``x`` the budget allows: (probabilities, sealed state, rows
    the budget had left before this call)."""
    import torch

    core = _core(inside)
    before = core.remaining()
    allowed = core.charge(len(x))
    sealed = inside.seal(core.stamp())  # counted and sealed before any answer leaves
    with torch.no_grad():
        batch = torch.from_numpy(x[:allowed])
        probs = torch.softmax(inside.part(batch), dim=1).double().numpy()
    return probs, sealed, before


def meter_report(inside) -> tuple[dict[str, Any], bytes]:
    """Sign the next usage report; (its JSON record, sealed state)."""
    core = _core(inside)
    report = core.report()
    return report.to_json(), inside.seal(core.stamp())


def meter_grant(inside, grant: dict[str, Any]) -> bytes:
    """Apply an owner's budget grant (its JSON record); the sealed state."""
    core = _core(inside)
    core.apply(BudgetGrant.from_json(grant))
    return inside.seal(core.stamp())


ENTRY_POINTS = (meter_provision, meter_resume, meter_answer, meter_report, meter_grant)
