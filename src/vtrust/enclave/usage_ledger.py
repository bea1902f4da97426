"""The owner's side of metering: provisioned devices, the budget granted to each, and
offline reconciliation of their signed usage reports.

For each device the ledger keeps the meter's public key (learnt at provisioning), the
budget granted so far, and the chain of reports reconciled: the last sequence number,
its digest (the head) and every earlier digest. :meth:`UsageLedger.reconcile` accepts a
report only if it is signed by the device's meter, is the next one, extends the head,
never counts backwards and stays within the budget granted — anything else raises
:class:`~vtrust.errors.MeteringViolation` naming what the device did (``replay``,
``skip``, ``rollback``, ``overuse``, ``forgery``) and leaves the ledger unchanged.
:meth:`UsageLedger.grant` signs a new absolute budget bound to the head, which the
device's enclave applies only on that same state.

The owner's signing key (Ed25519, from the OS CSPRNG) is kept in its own private file;
the ledger file holds public data only. Both are JSON, written atomically.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vtrust._io import atomic_write_json, parse_json
from vtrust.enclave.metering import BudgetGrant, UsageReport, genesis
from vtrust.errors import MeteringError, MeteringViolation

LEDGER_FORMAT = "vtrust-usage-ledger"
OWNER_KEY_FORMAT = "vtrust-meter-owner-key"


@dataclass
class DeviceAccount:
    """One device as the owner sees it."""

    device: str
    public: str  # the device meter's Ed25519 public key (hex)
    granted: int = 0  # absolute budget granted so far
    seq: int = 0  # last reconciled report
    head: str = ""  # its digest (the genesis digest before the first)
    count: int = 0  # answers it reported
    digests: dict[str, str] = field(default_factory=dict)  # seq → digest, every report

    def __post_init__(self) -> None:
        self.head = self.head or genesis(self.device)


class UsageLedger:
    """Devices, budgets and reconciled reports, signed for by the owner's key."""

    def __init__(
        self, owner_key: Ed25519PrivateKey, accounts: dict[str, DeviceAccount] | None = None
    ):
        self._key = owner_key
        self.accounts = dict(accounts or {})

    @classmethod
    def generate(cls) -> UsageLedger:
        """An empty ledger with a fresh owner key (OS CSPRNG)."""
        return cls(Ed25519PrivateKey.generate())

    @property
    def owner_public(self) -> str:
        """The owner's public key (hex), built into every meter at provisioning."""
        return self._key.public_key().public_bytes_raw().hex()

    def register(self, device: str, meter_public: str) -> DeviceAccount:
        """Record a newly provisioned device's meter key (zero budget)."""
        if device in self.accounts:
            raise MeteringError(f"device {device!r} is registered already")
        account = self.accounts[device] = DeviceAccount(device, meter_public)
        return account

    def account(self, device: str) -> DeviceAccount:
        try:
            return self.accounts[device]
        except KeyError:
            raise MeteringError(f"unknown device {device!r}") from None

    def grant(self, device: str, extra: int) -> BudgetGrant:
        """Sell ``extra`` more answers to ``device``: a grant of the new absolute limit,
        valid on the enclave state that signed the last reconciled report."""
        if extra < 1:
            raise MeteringError(f"a grant adds at least one query, got {extra}")
        account = self.account(device)
        account.granted += extra
        unsigned = BudgetGrant(device, account.granted, account.head)
        return BudgetGrant(
            **{**asdict(unsigned), "signature": self._key.sign(unsigned.payload()).hex()}
        )

    def reconcile(self, report: UsageReport) -> DeviceAccount:
        """Accept the device's next report, or raise :class:`MeteringViolation` (the
        ledger unchanged)."""
        account = self.account(report.device)
        try:
            report.verify(account.public)
        except MeteringError as exc:
            raise MeteringViolation(report.device, "forgery", str(exc)) from None
        seen = account.digests.get(str(report.seq))
        if seen is not None:
            if seen == report.digest:
                raise MeteringViolation(report.device, "replay",
                                        f"report {report.seq} was reconciled already")  # fmt: skip
            raise MeteringViolation(
                report.device, "rollback",
                f"a second, different report {report.seq}: the enclave was restarted from "
                "an older state",
            )  # fmt: skip
        if report.seq > account.seq + 1:
            missing = f"{account.seq + 1}" + (
                f"–{report.seq - 1}" if report.seq - 1 > account.seq + 1 else ""
            )
            raise MeteringViolation(report.device, "skip", f"report {missing} was not delivered")
        if report.seq <= account.seq or report.prev != account.head:
            raise MeteringViolation(
                report.device, "rollback",
                f"report {report.seq} does not extend the last reconciled report {account.seq}",
            )  # fmt: skip
        if report.count < account.count:
            went_back = f"count went back from {account.count} to {report.count}"
            raise MeteringViolation(report.device, "rollback", went_back)
        if report.count > account.granted or report.limit > account.granted:
            raise MeteringViolation(
                report.device, "overuse",
                f"{report.count} answers (limit {report.limit}) against {account.granted} granted",
            )  # fmt: skip
        account.seq, account.head, account.count = report.seq, report.digest, report.count
        account.digests[str(report.seq)] = report.digest
        return account

    def reconcile_all(self, reports: list[UsageReport]) -> list[MeteringViolation]:
        """Reconcile a batch in sequence order; the violations (each report that caught
        one is left out), in order."""
        caught = []
        for report in sorted(reports, key=lambda r: (r.device, r.seq)):
            try:
                self.reconcile(report)
            except MeteringViolation as violation:
                caught.append(violation)
        return caught

    # -- files -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """The ledger (public data: devices, budgets, digests) as JSON, atomically."""
        doc = {"format": LEDGER_FORMAT, "owner": self.owner_public,
               "devices": [asdict(a) for a in self.accounts.values()]}  # fmt: skip
        return atomic_write_json(path, doc)

    def save_key(self, path: str | os.PathLike[str]) -> Path:
        """The owner's private key, in its own file readable by the owner only."""
        doc = {"format": OWNER_KEY_FORMAT, "key": self._key.private_bytes_raw().hex()}
        return atomic_write_json(path, doc, private=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> UsageLedger:
        """A ledger and its owner key; :class:`MeteringError` for malformed files or a
        key that is not the ledger's owner."""
        key_doc = _read_json(key_path, "owner key")
        try:
            if key_doc.get("format") != OWNER_KEY_FORMAT:
                raise ValueError
            key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_doc["key"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise MeteringError(f"{key_path}: not a vtrust meter owner key") from None
        doc = _read_json(path, "usage ledger")
        try:
            if doc.get("format") != LEDGER_FORMAT:
                raise ValueError
            accounts = {}
            for raw in doc["devices"]:
                account = DeviceAccount(**raw)
                _check_account(account)
                accounts[account.device] = account
        except (AttributeError, KeyError, TypeError, ValueError):
            raise MeteringError(f"{path}: not a vtrust usage ledger") from None
        ledger = cls(key, accounts)
        if ledger.owner_public != doc.get("owner"):
            raise MeteringError(f"{key_path} is not the owner key of {path}")
        return ledger


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    try:
        return parse_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MeteringError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise MeteringError(f"{path}: not a readable {what} (JSON)") from None


def _check_account(a: DeviceAccount) -> None:
    ints = (a.granted, a.seq, a.count)
    if not all(type(v) is int and v >= 0 for v in ints) or not isinstance(a.digests, dict):
        raise ValueError("malformed account")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in a.digests.items()):
        raise ValueError("malformed digests")
    bytes.fromhex(a.public), bytes.fromhex(a.head)
