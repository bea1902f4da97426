"""The verifier's nonce ledger: fresh nonces it issued, and the ones already used.

A quote is fresh only if it answers a nonce this verifier issued (128 bits from
:mod:`secrets`), not longer ago than ``max_age``, and not answered before. The ledger is
a JSON file kept on the verifier's side (``vtrust enclave challenge`` adds to it,
``verify-quote`` consumes from it), written atomically so a crash never loses a record
of a used nonce.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from vtrust._io import atomic_write_json, parse_json
from vtrust.errors import AttestationError

LEDGER_FORMAT = "vtrust-nonce-ledger"
NONCE = re.compile(r"^[0-9a-f]{32}$")
MAX_AGE = timedelta(minutes=10)


class NonceLedger:
    """Outstanding nonces (with the time each was issued) and used ones."""

    def __init__(self, outstanding: dict[str, str] | None = None, used: set[str] | None = None):
        self.outstanding = dict(outstanding or {})
        self.used = set(used or ())

    @classmethod
    def load(cls, path: Path) -> NonceLedger:
        """The ledger in ``path`` (an empty one if the file does not exist yet)."""
        if not path.exists():
            return cls()
        try:
            doc = parse_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise AttestationError(f"{path}: not a readable nonce ledger (JSON)") from None
        outstanding = doc.get("outstanding") if isinstance(doc, dict) else None
        used = doc.get("used") if isinstance(doc, dict) else None
        if (
            doc.get("format") != LEDGER_FORMAT
            or not isinstance(outstanding, dict)
            or not isinstance(used, list)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in outstanding.items())
            or not all(isinstance(n, str) for n in used)
        ):
            raise AttestationError(f"{path}: not a vtrust nonce ledger")
        return cls(outstanding, set(used))

    def save(self, path: Path) -> Path:
        doc = {"format": LEDGER_FORMAT, "outstanding": self.outstanding, "used": sorted(self.used)}
        return atomic_write_json(path, doc)

    def issue(self, now: datetime | None = None) -> str:
        nonce = secrets.token_hex(16)
        self.outstanding[nonce] = (now or datetime.now(timezone.utc)).isoformat()
        return nonce

    def consume(
        self, nonce: str, *, now: datetime | None = None, max_age: timedelta = MAX_AGE
    ) -> None:
        """Accept ``nonce`` once; :class:`AttestationError` if it is malformed, was never
        issued here, is older than ``max_age`` or was used already."""
        if not isinstance(nonce, str) or not NONCE.match(nonce):
            raise AttestationError("malformed nonce: a verifier's nonce is 32 hex digits")
        if nonce in self.used:
            raise AttestationError("stale or replayed nonce: it was used already")
        issued = self.outstanding.get(nonce)
        if issued is None:
            raise AttestationError("stale or replayed nonce: this verifier did not issue it")
        try:
            age = (now or datetime.now(timezone.utc)) - datetime.fromisoformat(issued)
        except (ValueError, TypeError):
            raise AttestationError("malformed nonce ledger entry") from None
        del self.outstanding[nonce]
        self.used.add(nonce)
        if age > max_age:
            raise AttestationError(f"stale nonce: issued {age} ago (at most {max_age})")
