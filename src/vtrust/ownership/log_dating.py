"""Dated mark logs: a notary dates the answer-watermark log, so records an owner adds
after seeing a suspect do not count as evidence against it.

An answer-watermark log holds no secret, but its owner holds the key: after seeing a
suspect it could write records the key explains and the suspect agrees with
(:func:`vtrust.attacks.forged_log.forge_mark_log`). A log is evidence only for the part
of it that was fixed before the suspect was seen. So the log is a hash chain and its
prefixes are notarised:

* h₀ = SHA-256("vtrust-mark-log:v1"), hᵢ = SHA-256(hᵢ₋₁ ‖ the canonical JSON of record
  i), so hₙ fixes the first n records, their order and every field;
* the *commitment* of the first n records is SHA-256("vtrust-mark-log-prefix" ‖ n ‖ hₙ),
  which the notary (:mod:`vtrust.watermark.notary`) signs with the time; the receipt's
  ``owner`` field names the prefix (``mark-log:<n>``);
* the receipts sit in a JSON file beside the log (:func:`add_receipt`, atomic).

The verifier recomputes the chain from the records it is given — nothing it compares
comes from the receipts but the signature and the time — and keeps the longest prefix
with a receipt from the notary *it* trusts, for *that* prefix, dated before the time
*it* first saw the suspect (:func:`dated_prefix`). Editing, reordering or inserting a
record changes every later head, so receipts over those prefixes no longer verify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from vtrust._io import atomic_write_json, parse_json
from vtrust.errors import StateFileError
from vtrust.ownership.mark_store import MarkRecord
from vtrust.watermark.notary import Notary, NotaryPublic, check_receipt

DATES_FORMAT = "vtrust-mark-log-dates"
_GENESIS = hashlib.sha256(b"vtrust-mark-log:v1").digest()


def chain_heads(records: Sequence[MarkRecord]) -> list[bytes]:
    """h₀ … hₙ over ``records`` in order (n + 1 digests)."""
    heads = [_GENESIS]
    for record in records:
        line = json.dumps(record.to_json(), sort_keys=True, separators=(",", ":")).encode()
        heads.append(hashlib.sha256(heads[-1] + line).digest())
    return heads


def prefix_commitment(count: int, head: bytes) -> str:
    """The commitment (hex) a receipt for the first ``count`` records signs."""
    return hashlib.sha256(b"vtrust-mark-log-prefix" + count.to_bytes(8, "big") + head).hexdigest()


def date_log(
    records: Sequence[MarkRecord], notary: Notary, *, when: datetime | None = None
) -> dict:
    """A receipt dating all of ``records`` now (or at ``when``: tests)."""
    head = chain_heads(records)[-1]
    return notary.notarize(prefix_commitment(len(records), head), f"mark-log:{len(records)}",
                           when=when)  # fmt: skip


def dates_path(log: str | Path) -> Path:
    """Where a log's receipts are kept by default: ``<log>.dates.json``."""
    log = Path(log)
    return log.with_name(log.name + ".dates.json")


def load_receipts(path: str | Path) -> list[dict]:
    """The receipts of a dates file.

    Raises:
        StateFileError: unreadable, or not a dates file.
    """
    try:
        doc = parse_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateFileError(
            f"{path}: cannot read the mark-log dates ({type(exc).__name__})"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != DATES_FORMAT:
        raise StateFileError(f"{path}: not a vtrust mark-log dates file")
    receipts = doc.get("receipts")
    if not isinstance(receipts, list):
        raise StateFileError(f"{path}: the dates file has no list of receipts")
    return receipts


def add_receipt(path: str | Path, receipt: dict) -> Path:
    """Append ``receipt`` to the dates file at ``path`` (created if missing), atomically."""
    path = Path(path)
    receipts = load_receipts(path) if path.exists() else []
    atomic_write_json(path, {"format": DATES_FORMAT, "receipts": [*receipts, receipt]})
    return path


def dated_prefix(
    records: Sequence[MarkRecord],
    receipts: Sequence[object],
    notary: NotaryPublic,
    suspect_seen: datetime,
) -> tuple[int, str]:
    """How many leading records a receipt dates before ``suspect_seen``, and why no more:
    (n, "") when every record is dated, else the reason for the first undated one."""
    heads = chain_heads(records)
    best, reasons = 0, []
    for receipt in receipts:
        owner = receipt.get("owner") if isinstance(receipt, dict) else None
        prefix = owner.removeprefix("mark-log:") if isinstance(owner, str) else ""
        if not prefix.isdigit() or int(prefix) > len(records):
            reasons.append("a receipt names no prefix of this log")
            continue
        count = int(prefix)
        why = check_receipt(receipt, prefix_commitment(count, heads[count]), notary, suspect_seen)
        if why:
            reasons.append(f"receipt for {count} records: {why}")
        elif count > best:
            best = count
    if best == len(records):
        return best, ""
    if not receipts:
        return best, "the log has no receipts"
    return best, reasons[-1] if reasons else f"no receipt dates the records after the first {best}"
