"""Keyed permutations from a chaotic map (the construction of Chaotic Weights, Lin et
al. 2021, with the key widened to ≥ 128 bits through HKDF).

The logistic map ``x ← μ x (1 − x)`` is iterated from ``x0 ∈ (0, 1)`` with
``μ ∈ [3.99, 4)``, both taken from HKDF(secret, label); after a burn-in, each orbit value
drives one step of a Fisher–Yates shuffle. The step uses 32 low mantissa bits of the
value (the orbit's density piles up near 0 and 1, its fine bits are close to uniform),
so a permutation costs O(n) — no sort. The map is only the mixing step: the
permutation's unpredictability rests on the key, as with any keyed construction. The
orbit uses plain IEEE double arithmetic (no fused multiply-add, no libm), so the same
key gives the same permutation on every platform.
"""

from __future__ import annotations

import numba
import numpy as np

from vtrust.keying import hkdf

BURN_IN = 1000
_MU_LOW, _MU_SPAN = 3.99, 0.0099999  # μ ∈ [3.99, 4): the map's fully chaotic regime


@numba.njit
def _orbit(x0, mu, n, burn):
    x = x0
    for _ in range(burn):
        x = mu * x * (1.0 - x)
    out = np.empty(n)
    for i in range(n):
        x = mu * x * (1.0 - x)
        out[i] = x
    return out


def _parameters(secret: bytes, label: str) -> tuple[float, float]:
    material = hkdf(secret, f"chaos:{label}", 16)
    u = int.from_bytes(material[:8], "big") / 2.0**64
    v = int.from_bytes(material[8:], "big") / 2.0**64
    x0 = 0.001 + 0.998 * u  # away from the fixed point 0 and its preimage 1
    return x0, _MU_LOW + _MU_SPAN * v


def orbit(secret: bytes, label: str, n: int) -> np.ndarray:
    """``n`` values of the keyed logistic orbit for ``label``."""
    x0, mu = _parameters(secret, label)
    return _orbit(x0, mu, int(n), BURN_IN)


@numba.njit
def _shuffle(bits, rows, width):
    """``rows`` Fisher–Yates shuffles of range(width), consuming one orbit value's
    bits per step (rows · (width − 1) values)."""
    out = np.empty((rows, width), dtype=np.int64)
    mask = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    at = 0
    for r in range(rows):
        for i in range(width):
            out[r, i] = i
        for i in range(width - 1, 0, -1):
            u = (bits[at] >> np.uint64(8)) & mask  # 32 low mantissa bits above the last 8
            at += 1
            j = np.int64((u * np.uint64(i + 1)) >> shift)
            out[r, i], out[r, j] = out[r, j], out[r, i]
    return out


def _shuffles(secret: bytes, label: str, rows: int, width: int) -> np.ndarray:
    values = orbit(secret, label, max(1, rows * (width - 1)))
    return _shuffle(values.view(np.uint64), rows, width)


def permutation(secret: bytes, label: str, n: int) -> np.ndarray:
    """A permutation of ``range(n)`` keyed by ``(secret, label)``."""
    return _shuffles(secret, label, 1, int(n))[0]


def row_permutations(secret: bytes, label: str, rows: int, width: int) -> np.ndarray:
    """``rows`` independent keyed permutations of ``range(width)``, one per row."""
    return _shuffles(secret, label, int(rows), int(width))
