"""A cryptographic random stream: ChaCha20 keystream turned into the numbers vtrust's
protections draw (pads, Freivalds vectors, permutations, trigger sets, projections).

:class:`KeyStream` is a deterministic function of a 256-bit key, so the same key gives
the same numbers on every platform and numpy version (numpy's generators promise no
stream stability and are not cryptographic: an observer of a PCG64 stream can
reconstruct its state). Where the numbers are secrets the key comes from
:func:`fresh` (the operating system's CSPRNG via :mod:`secrets`); where they must be
re-derived later (a watermark key's triggers) it is HKDF of a secret for one purpose
(:func:`derived`). :func:`from_seed` exists for tests and experiments only: anyone who
knows the seed knows every number, and callers report such runs as insecure.

Integers below a bound are drawn by rejection (no modular bias), permutations by
sorting 64-bit random tags (uniform up to tag collisions, probability < n²/2^65).
"""

from __future__ import annotations

import hashlib
import math
import secrets

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vtrust.keying import hkdf

_NONCE = bytes(16)  # ChaCha20 (RFC 7539 layout in `cryptography`): counter ‖ nonce


class KeyStream:
    """An endless ChaCha20 keystream under ``key`` (32 bytes) with typed draws."""

    def __init__(self, key: bytes, *, insecure_seed: int | None = None) -> None:
        if len(key) != 32:
            raise ValueError("a keystream key has 32 bytes")
        self._encryptor = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
        self.insecure_seed = insecure_seed

    @property
    def secure(self) -> bool:
        """False when the key came from a seed (predictable to whoever knows the seed)."""
        return self.insecure_seed is None

    def bytes(self, n: int) -> bytes:
        """The next ``n`` keystream bytes."""
        return self._encryptor.update(bytes(int(n)))

    def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:
        count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        raw = np.frombuffer(self.bytes(8 * count), dtype="<u8").astype(np.uint64)
        return raw.reshape(shape)

    def below(self, bound: int, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform integers in [0, bound) (int64), bound ≤ 2^62, by rejection sampling."""
        bound = int(bound)
        if not 1 <= bound <= 1 << 62:
            raise ValueError(f"bound must be in 1..2^62, got {bound}")
        count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        bits = max(1, (bound - 1).bit_length())
        mask = np.uint64((1 << bits) - 1)
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            want = count - filled
            draw = self.uint64(want + want // 2 + 8) & mask  # acceptance ≥ 1/2
            draw = draw[draw < np.uint64(bound)][:want]
            out[filled : filled + len(draw)] = draw.astype(np.int64)
            filled += len(draw)
        return out.reshape(shape)

    def unit_float32(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform float32 values in [0, 1) on the 2^-24 grid (exact on every platform)."""
        count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        raw = np.frombuffer(self.bytes(4 * count), dtype="<u4") >> np.uint32(8)
        return (raw.astype(np.float32) * np.float32(2.0**-24)).reshape(shape)

    def simplex(self, rows: int, k: int) -> np.ndarray:
        """``rows`` points uniform on the probability simplex of ``k`` classes (float64):
        normalised exponentials, i.e. Dirichlet(1, …, 1)."""
        u = ((self.uint64((rows, k)) >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
        e = -np.log(u)  # u ∈ (0, 1]: finite
        return e / e.sum(axis=1, keepdims=True)

    def standard_normal(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Standard normal float32 values (Box–Muller on 53-bit uniforms)."""
        count = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        pairs = (count + 1) // 2
        u = (self.uint64(2 * pairs) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        radius = np.sqrt(-2.0 * np.log1p(-u[:pairs]))  # 1 − u ∈ (0, 1]: log is finite
        angle = 2.0 * np.pi * u[pairs:]
        values = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]
        return values.astype(np.float32).reshape(shape)

    def permutation(self, n: int) -> np.ndarray:
        """A uniformly random permutation of range(n) (int64)."""
        return np.argsort(self.uint64(int(n)), kind="stable").astype(np.int64)

    def row_permutations(self, rows: int, width: int) -> np.ndarray:
        """``rows`` independent permutations of range(width), one per row (int64)."""
        tags = self.uint64((int(rows), int(width)))
        return np.argsort(tags, axis=1, kind="stable").astype(np.int64)

    def choice(self, n: int, size: int) -> np.ndarray:
        """``size`` distinct indices out of range(n), in random order."""
        if size > n:
            raise ValueError(f"cannot choose {size} of {n}")
        return self.permutation(n)[:size]


def fresh() -> KeyStream:
    """A stream under a new key from :mod:`secrets`: for secrets (pads, challenges)."""
    return KeyStream(secrets.token_bytes(32))


def derived(secret: bytes, purpose: str, salt: bytes | None = None) -> KeyStream:
    """The stream HKDF-SHA256(secret, salt, purpose) keys: re-derivable by the key holder."""
    return KeyStream(hkdf(secret, f"stream:{purpose}", 32, salt=salt))


def from_seed(seed: int) -> KeyStream:
    """A stream anyone who knows ``seed`` can reproduce: tests and experiments only."""
    key = hashlib.sha256(f"vtrust-insecure-seed:{int(seed)}".encode()).digest()
    return KeyStream(key, insecure_seed=int(seed))


def for_run(seed: int | None) -> KeyStream:
    """:func:`fresh` unless an explicit ``seed`` asks for a reproducible (insecure) run."""
    return fresh() if seed is None else from_seed(seed)
