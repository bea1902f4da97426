"""Per-user fingerprints: one watermarked copy per user or device, each with its own
static key, kept in a registry (SQLite) so a leaked copy can be traced to its user.

The registry stores the keys themselves (secrets included): it is created readable by its
owner only (0600; SQLite gives its journal the same mode), and an existing registry
that others could read is made private when opened.
"""

from __future__ import annotations

import copy
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from vtrust._io import check_output_path
from vtrust.data import Dataset
from vtrust.errors import InputError, VtrustError
from vtrust.models import TrainConfig
from vtrust.watermark.keys import WatermarkKey, key_from_json, key_to_json
from vtrust.watermark.static import StaticWatermark, new_static_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    user TEXT NOT NULL,
    model_version TEXT NOT NULL,
    commitment TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user, model_version)
)
"""


class RegistryError(VtrustError, ValueError):
    """The fingerprint registry cannot be opened or holds malformed entries."""


@dataclass(frozen=True)
class TraceRow:
    user: str
    model_version: str
    p_value: float
    ber: float
    owned: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "model_version": self.model_version,
            "p_value": self.p_value,
            "ber": self.ber,
            "owned": self.owned,
        }


class FingerprintRegistry:
    """A SQLite table of (user, model version) → static key."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_output_path(path) if not Path(path).exists() else Path(path)
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            if self.path.stat().st_mode & 0o077:
                os.chmod(self.path, 0o600)
            with closing(self._connect()) as db, db:
                db.execute(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise RegistryError(f"{self.path}: not a usable registry ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def register(self, user: str, model_version: str, key: WatermarkKey) -> None:
        if key.static is None:
            raise InputError("fingerprints use static keys")
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?)",
                (user, model_version, key.commitment, key_to_json(key)),
            )

    def entries(self) -> list[tuple[str, str, WatermarkKey]]:
        try:
            with closing(self._connect()) as db:
                rows = db.execute(
                    "SELECT user, model_version, key_json FROM fingerprints ORDER BY user"
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"{self.path}: cannot read registry ({exc})") from None
        return [(u, v, key_from_json(k, source=f"{self.path}:{u}")) for u, v, k in rows]

    def trace(self, suspect: nn.Module, *, fpr: float = 1e-6) -> list[TraceRow]:
        """Every registered user ranked by the p-value of their key on ``suspect``."""
        rows = []
        for user, version, key in self.entries():
            result = StaticWatermark(key).verify(suspect, fpr=fpr)
            rows.append(
                TraceRow(
                    user,
                    version,
                    result.p_value,
                    1.0 - result.score if result.total else 1.0,
                    result.owned,
                )
            )
        return sorted(rows, key=lambda r: (r.p_value, r.user))


def fingerprint_copies(
    base: nn.Module,
    data: Dataset,
    users: list[str],
    *,
    bits: int = 128,
    epochs: int = 5,
    lr: float = 1e-3,
    seed: int | None = None,
) -> dict[str, tuple[nn.Module, WatermarkKey]]:
    """One copy of ``base`` per user, each fine-tuned to carry its own static key."""
    if len(set(users)) != len(users):
        raise InputError("user names must be distinct")
    copies = {}
    for i, user in enumerate(users):
        model = copy.deepcopy(base)
        key = new_static_key(
            model, bits=bits, owner=user, seed=None if seed is None else seed * 100_003 + i
        )
        config = TrainConfig(epochs=epochs, lr=lr, cosine=False, seed=i)
        StaticWatermark(key).embed(model, data, config)
        copies[user] = (model, key)
    return copies
