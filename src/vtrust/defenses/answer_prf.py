"""The keyed function that decides which answers carry an answer watermark: a batched
PRF of canonical (integer) queries, per client.

Construction (Carter–Wegman, then a block-cipher PRF):

1. **Universal hash, shared by all clients.** Each canonical value c (int32) is split
   into 16-bit limbs ``lo = c & 0xFFFF`` and ``hi = c >> 16``; eight lanes
   ``h_k = Σ_j lo_j·A_kj + hi_j·B_kj`` with A, B uniform in [0, 2¹⁶) drawn from a ChaCha20
   keystream under HKDF(secret, "answer-mark:hash"). Every product is below 2³² and a
   chunk of at most 2¹⁹ columns sums below 2⁵³, so the lanes are exact float64 matrix
   products (BLAS), summed across chunks in int64 (exact below 2⁶³ for inputs of fewer
   than 2³⁰ values). Two different queries have a nonzero limb difference δ; for each
   lane, fixing every key entry but one where δ ≠ 0 leaves at most one value of it that
   makes the lane collide, so all eight collide with probability ≤ 2⁻¹²⁸.
2. **PRF, owner-level.** The 64 lane bytes, after one block naming the query's shape,
   are CBC-MAC'd under AES-256 with the selection key (HKDF(secret,
   "answer-mark:select")): fixed-length CBC-MAC is a PRF (Bellare–Kilian–Rogaway), and a
   PRF of an almost-universal hash is a PRF up to q²·2⁻¹²⁸ for q queries. This 16-byte
   *tag* gives u (first 8 bytes / 2⁶⁴), which selects the query with probability
   ``rate`` — the same for every client, so an input is marked with probability
   ``rate`` however many clients ask it.
3. **Label bits, per client.** v is the first 8 bytes of AES-256 of the tag under the
   client's key (HKDF(secret, "answer-mark:client:<id>")): a PRP applied to distinct
   pseudorandom tags is pseudorandom and independent of u, and the client keys are
   independent, so a mark first given to one client names that client.

Without the secret neither the hash key nor the AES keys are known, so which query is
marked, and with which label, is unpredictable; a batch costs one matrix product, five
AES calls for the tags and one per client for the labels.
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from vtrust.errors import InputError
from vtrust.keying import hkdf
from vtrust.keystream import KeyStream

LANES = 8
_CHUNK = 1 << 19  # columns per exact float64 product
_MAX_VALUES = 1 << 30
_TWO64 = float(1 << 64)


def client_key(secret: bytes, client_id: str) -> bytes:
    """The per-client PRF key: HKDF(owner secret, "answer-mark:client:<id>")."""
    return hkdf(secret, f"answer-mark:client:{client_id}")


class AnswerPrf:
    """``u`` (selection) and ``v`` (label bits, per client) for each canonical query of a
    batch under the owner's ``secret``.

    Hash keys (per input size) and client keys are cached, each cache bounded.
    """

    def __init__(self, secret: bytes, *, max_clients: int = 4096) -> None:
        self._secret = secret
        self._hash_keys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._client_ciphers: dict[str, Cipher] = {}
        self._max_clients = max_clients
        self._selector: Cipher | None = None

    def _hash_key(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if dim not in self._hash_keys:
            if len(self._hash_keys) >= 8:
                self._hash_keys.clear()
            stream = KeyStream(hkdf(self._secret, f"answer-mark:hash:{dim}"))
            raw = np.frombuffer(stream.bytes(2 * 2 * LANES * dim), dtype="<u2")
            keys = raw.astype(np.float64).reshape(2, dim, LANES)
            self._hash_keys[dim] = (keys[0], keys[1])
        return self._hash_keys[dim]

    def _cipher(self, client_id: str) -> Cipher:
        if client_id not in self._client_ciphers:
            if len(self._client_ciphers) >= self._max_clients:
                self._client_ciphers.pop(next(iter(self._client_ciphers)))
            key = client_key(self._secret, client_id)
            self._client_ciphers[client_id] = Cipher(algorithms.AES(key), modes.ECB())
        return self._client_ciphers[client_id]

    def lanes(self, canonical_queries: np.ndarray) -> np.ndarray:
        """The universal hash of each row: (n, 8) uint64."""
        rows = np.asarray(canonical_queries)
        if rows.dtype.kind not in "iu":
            raise InputError(f"canonical queries are int32 values, got {rows.dtype}")
        low, high = (int(rows.min()), int(rows.max())) if rows.size else (0, 0)
        if low < -(2**31) or high >= 2**31:
            raise InputError(f"canonical queries are int32 values, got {rows.dtype}")
        rows = rows.astype(np.int32, copy=False).reshape(len(rows), -1)
        dim = rows.shape[1]
        if dim > _MAX_VALUES:
            raise InputError(f"a query of {dim} values is too large to watermark")
        key_lo, key_hi = self._hash_key(dim)
        if dim <= _CHUNK and low >= 0 and high <= 0xFFFF:
            return (rows.astype(np.float64) @ key_lo).astype(np.int64).view(np.uint64)  # hi = 0
        total = np.zeros((len(rows), LANES), dtype=np.int64)
        for start in range(0, dim, _CHUNK):
            part = rows[:, start : start + _CHUNK]
            lo = (part & 0xFFFF).astype(np.float64)
            lanes = lo @ key_lo[start : start + _CHUNK]
            hi = part >> 16
            if hi.any():
                lanes += hi.astype(np.float64) @ key_hi[start : start + _CHUNK]
            total += lanes.astype(np.int64)
        return total.view(np.uint64)

    def tags(self, canonical_queries: np.ndarray) -> np.ndarray:
        """The owner-level tag of every row: (n, 2) uint64 (the CBC-MAC of its hash)."""
        if self._selector is None:
            key = hkdf(self._secret, "answer-mark:select")
            self._selector = Cipher(algorithms.AES(key), modes.ECB())
        return self._mac(self._selector, canonical_queries)

    def selection(self, canonical_queries: np.ndarray) -> np.ndarray:
        """The owner-level ``u`` of every row (float64 in [0, 1), the same for every
        client): which inputs carry a mark at all (those with u < rate)."""
        return self.tags(canonical_queries)[:, 0].astype(np.float64) / _TWO64

    def labels(
        self, client_id: str, canonical_queries: np.ndarray, tags: np.ndarray | None = None
    ) -> np.ndarray:
        """The client's ``v`` (uint64) of every row: AES of its tag under the client's key."""
        tags = self.tags(canonical_queries) if tags is None else tags
        if len(tags) == 0:
            return np.zeros(0, dtype=np.uint64)
        encrypt = self._cipher(client_id).encryptor()
        blocks = np.ascontiguousarray(tags, dtype="<u8").tobytes()
        return np.frombuffer(encrypt.update(blocks), dtype="<u8").reshape(-1, 2)[:, 0].copy()

    def select_and_label(
        self, client_id: str, canonical_queries: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`selection` and :meth:`labels` in one pass (the tags computed once)."""
        tags = self.tags(canonical_queries)
        u = tags[:, 0].astype(np.float64) / _TWO64
        return u, self.labels(client_id, canonical_queries, tags)

    def _mac(self, cipher: Cipher, canonical_queries: np.ndarray) -> np.ndarray:
        """CBC-MAC under ``cipher`` of (shape block, the row's lanes): (n, 2) uint64."""
        n = len(canonical_queries)
        if n == 0:
            return np.zeros((0, 2), dtype=np.uint64)
        shape = np.asarray(np.shape(canonical_queries)[1:], dtype="<i8").tobytes()
        header = hashlib.blake2b(b"vtrust-answer-mark:v3" + shape, digest_size=16).digest()
        blocks = self.lanes(canonical_queries).astype("<u8").reshape(n, LANES // 2, 2)
        encrypt = cipher.encryptor()
        state = np.frombuffer(encrypt.update(header), dtype="<u8").reshape(1, 2)
        state = np.repeat(state, n, axis=0)
        for b in range(blocks.shape[1]):
            mixed = np.ascontiguousarray(state ^ blocks[:, b])
            state = np.frombuffer(encrypt.update(mixed.tobytes()), dtype="<u8").reshape(n, 2)
        return state
