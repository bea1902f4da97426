"""The result store: one JSON line per finished cell, appended and synced as it finishes.

A run killed mid-write leaves at most a torn last line, which reading ignores (the cell
then runs again); finished cells are never redone. Only the process that owns the run
writes to the store — executors hand results back to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vtrust.errors import InputError


class CellStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def records(self) -> dict[str, dict[str, Any]]:
        """Finished cells by key (a torn or foreign line is skipped)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                out[record["key"]] = record
        return out

    def append(self, record: dict[str, Any]) -> None:
        if "key" not in record:
            raise InputError("a cell record needs a key")
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
