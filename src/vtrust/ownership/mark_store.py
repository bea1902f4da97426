"""The answer-watermark oracle's record of what it planted: a bounded, crash-safe log.

Each planted answer is one JSON line: which client got it, the query (its canonical,
quantised form), the model's true top-1 label and the planted one. A later answer
reusing a planted label for a near-identical query is a line too, pointing (``of``) at
the planted one. Nothing secret is written: verification needs the planted labels, not
the key that chose them.

Lines are appended and ``fsync``-ed per batch, so a crash loses at most the batch being
answered; a torn last line (the crash happened mid-write) is skipped on reading and
counted (and cut off when the store is opened to continue), every other malformed line
is an error naming the line. The log is bounded
(``capacity`` lines): once full, :meth:`MarkStore.full` tells the oracle to stop
planting — a planted answer that cannot be recorded would cost accuracy and prove
nothing.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtrust.errors import StateFileError

STORE_FORMAT = "vtrust-answer-marks"
STORE_VERSION = 1
DEFAULT_CAPACITY = 1_000_000
_DTYPES = ("int8", "int16", "int32")


def dequantise(canonical: np.ndarray, step: float) -> np.ndarray:
    """The float32 input a canonical query stands for: ``canonical · step`` in float32
    (the one formula the oracle and verification share)."""
    values = np.asarray(canonical).astype(np.float32)
    values *= np.float32(step)
    return values


@dataclass(frozen=True)
class MarkRecord:
    """One planted (or reused) answer.

    Attributes:
        id: the record's index in the log.
        client: the client id it was answered to.
        query: the client's query index (0-based) it answered.
        canonical: the quantised query (integers; the input is ``canonical * step``).
        step: the quantisation step.
        true_label: the model's own top-1 class for the query.
        planted: the label answered instead.
        of: for a reused answer, the id of the planted record it repeats (else None).
    """

    id: int
    client: str
    query: int
    canonical: np.ndarray
    step: float
    true_label: int
    planted: int
    of: int | None = None

    @property
    def origin(self) -> int:
        """The planted record this answer comes from (itself unless reused)."""
        return self.id if self.of is None else self.of

    def input(self) -> np.ndarray:
        """The query as the float32 image the model was asked (up to step / 2)."""
        return dequantise(self.canonical, self.step)

    def to_json(self) -> dict:
        dtype = next(d for d in _DTYPES if _fits(self.canonical, d))
        raw = np.ascontiguousarray(self.canonical, dtype=np.dtype(dtype).newbyteorder("<"))
        return {
            "id": self.id,
            "client": self.client,
            "query": self.query,
            "shape": list(self.canonical.shape),
            "dtype": dtype,
            "canonical": base64.b64encode(raw.tobytes()).decode("ascii"),
            "step": self.step,
            "true": self.true_label,
            "planted": self.planted,
            "of": self.of,
        }

    @classmethod
    def from_json(cls, doc: object, where: str) -> MarkRecord:
        if not isinstance(doc, dict):
            raise StateFileError(f"{where}: not a mark record")
        try:
            dtype = str(doc["dtype"])
            if dtype not in _DTYPES:
                raise ValueError(f"dtype {dtype!r}")
            shape = tuple(int(s) for s in doc["shape"])
            raw = base64.b64decode(str(doc["canonical"]), validate=True)
            canonical = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            canonical = canonical.reshape(shape).astype(np.int32)
            of = doc.get("of")
            record = cls(
                id=int(doc["id"]),
                client=str(doc["client"]),
                query=int(doc["query"]),
                canonical=canonical,
                step=float(doc["step"]),
                true_label=int(doc["true"]),
                planted=int(doc["planted"]),
                of=None if of is None else int(of),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"{where}: malformed mark record ({exc})") from None
        if not (record.step > 0 and np.isfinite(record.step)) or record.id < 0:
            raise StateFileError(f"{where}: malformed mark record (step or id)")
        return record


def _fits(values: np.ndarray, dtype: str) -> bool:
    info = np.iinfo(dtype)
    return values.size == 0 or (int(values.min()) >= info.min and int(values.max()) <= info.max)


class MarkStore:
    """The records of an answer-watermarked deployment, in memory and (with ``path``)
    in an append-only JSON-lines file.

    Args:
        path: the log file (created with a header line if missing, else read and
            continued); None keeps the records in memory only (experiments).
        capacity: the most records the store takes.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 capacity: int = DEFAULT_CAPACITY) -> None:  # fmt: skip
        if capacity < 1:
            raise StateFileError(f"a mark store needs a positive capacity, got {capacity}")
        self.path = None if path is None else Path(path)
        self.capacity = capacity
        self.records: list[MarkRecord] = []
        self.torn_lines = 0
        if self.path is not None:
            if self.path.exists():
                self.records, self.torn_lines = read_records(self.path)
                if self.torn_lines:  # drop the torn line before appending after it
                    self._truncate_torn_line()
            else:
                self._write_lines([{"format": STORE_FORMAT, "version": STORE_VERSION}])

    def _truncate_torn_line(self) -> None:
        data = self.path.read_bytes()
        try:
            os.truncate(self.path, data.rfind(b"\n") + 1)
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot repair the torn last line "
                                 f"({exc.strerror})") from None  # fmt: skip

    def __len__(self) -> int:
        return len(self.records)

    @property
    def full(self) -> bool:
        return len(self.records) >= self.capacity

    def next_id(self) -> int:
        return self.records[-1].id + 1 if self.records else 0

    def append(self, records: Iterable[MarkRecord]) -> None:
        """Add records (ids continuing the log's), durably when the store has a file."""
        batch = list(records)
        if not batch:
            return
        if len(self.records) + len(batch) > self.capacity:
            raise StateFileError(f"the mark store is full ({self.capacity} records)")
        if self.path is not None:
            self._write_lines([r.to_json() for r in batch])
        self.records.extend(batch)

    def _write_lines(self, docs: list[dict]) -> None:
        text = "".join(json.dumps(d, sort_keys=True, separators=(",", ":")) + "\n" for d in docs)
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StateFileError(f"{self.path}: cannot append ({exc.strerror})") from None

    def __iter__(self) -> Iterator[MarkRecord]:
        return iter(self.records)


def read_records(path: str | os.PathLike[str]) -> tuple[list[MarkRecord], int]:
    """The records of a mark log and the number of torn final lines skipped (0 or 1).

    Raises:
        StateFileError: not a mark log, or a malformed line other than a torn last one.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the mark store ({exc.strerror})") from None
    lines = data.split(b"\n")
    torn = 0
    if lines and lines[-1] != b"":  # no newline after the last line: it was being written
        lines, torn = lines[:-1], 1
    lines = [line for line in lines if line]
    if not lines:
        raise StateFileError(f"{path}: not an answer-mark store (empty)")
    try:
        header = json.loads(lines[0])
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != STORE_FORMAT:
        raise StateFileError(f"{path}: not an answer-mark store")
    if header.get("version") != STORE_VERSION:
        raise StateFileError(
            f"{path}: store version {header.get('version')!r} (this vtrust reads 1)"
        )
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            doc = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            raise StateFileError(f"{path}:{number}: not JSON") from None
        record = MarkRecord.from_json(doc, f"{path}:{number}")
        if record.id != len(records) or (record.of is not None and not 0 <= record.of < record.id):
            raise StateFileError(f"{path}:{number}: record ids out of order")
        records.append(record)
    return records, torn
