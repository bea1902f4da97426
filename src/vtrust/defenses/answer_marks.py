"""Answer watermarks (DAWN, Szyller et al., ACM MM 2021): a few answers carry a secret,
so a model trained on the oracle's answers carries it too.

For each query the oracle computes a keyed PRF of the query's canonical form (the input
quantised to ``step``): keyed BLAKE2b under the client's key, HKDF(owner secret,
``answer-mark:client:<id>``). Its first 64 bits select the query with probability
``rate``; its next 64 bits pick the planted label among the C − 1 classes the model does
*not* answer (shift 1 + v mod (C − 1), bias < 2⁻⁵⁸), and the answer's probabilities
are swapped between the true and the planted class, so a watermarked answer looks like
an ordinary confident one. Because the choice is a function of the query, asking the
same query again gives the same answer; a query within ``radius`` (root-mean-square
distance per input value) of any query planted before — for any client — is given that
planted answer too, so asking near-identical variants and voting does not average the
mark away (the first planted variant fixes the answer of the later ones).

Every planted (and every reused) answer is a record in a
:class:`~vtrust.ownership.mark_store.MarkStore` — never the key. Verification and
tracing: :mod:`vtrust.ownership.answer_evidence`.

What it promises, against whom: see docs/SECURITY.md ("Answer watermarks").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from vtrust.catalog import register
from vtrust.errors import InputError
from vtrust.keying import ProtectionKey, hkdf, load_protection_key
from vtrust.oracle import QueryDefense
from vtrust.ownership.mark_store import DEFAULT_CAPACITY, MarkRecord, MarkStore

_DOMAIN = b"vtrust-answer-mark:v1"
_TWO64 = float(1 << 64)
SCREEN_DIM = 8


@dataclass(frozen=True)
class AnswerMarkParams:
    """Attributes:
    rate: share of (distinct) queries whose answer is replaced.
    step: quantisation step of the canonical query (1/255: 8-bit images).
    radius: RMS distance per input value within which a query repeats a planted answer.
    key: a protection key file holding the owner's secret ("": a fresh secret from
        :mod:`secrets`, kept by this deployment only).
    store: the mark log's path ("": records kept in memory — experiments).
    capacity: the most records the log takes; past it no new answer is planted.
    """

    rate: float = 0.005
    step: float = 1.0 / 255.0
    radius: float = 0.02
    key: str = ""
    store: str = ""
    capacity: int = DEFAULT_CAPACITY

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 0.5:
            raise InputError(f"rate must be in (0, 0.5], got {self.rate}")
        if not self.step > 0 or not np.isfinite(self.step):
            raise InputError(f"step must be a positive number, got {self.step}")
        if not 0.0 <= self.radius < 1e6:
            raise InputError(f"radius must be non-negative, got {self.radius}")
        if self.capacity < 1:
            raise InputError(f"capacity must be positive, got {self.capacity}")


def canonical(x: np.ndarray, step: float) -> np.ndarray:
    """The integer form of a batch of queries: ``round(x / step)`` as int32 (InputError
    if a value is too large for it)."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) / step)
    if scaled.size and np.abs(scaled).max() > 2**31 - 1:
        raise InputError(f"query values too large for the quantisation step {step}")
    return scaled.astype(np.int32)


def client_key(secret: bytes, client_id: str) -> bytes:
    """The per-client PRF key: HKDF(owner secret, "answer-mark:client:<id>")."""
    return hkdf(secret, f"answer-mark:client:{client_id}")


def prf(key: bytes, canonical_query: np.ndarray) -> tuple[float, int]:
    """(u, v) for one canonical query: u uniform in [0, 1) selects, v (64 bits) picks
    the label."""
    h = hashlib.blake2b(key=key, digest_size=16, person=b"vtrust-dawn-v1")
    h.update(_DOMAIN)
    h.update(np.asarray(canonical_query.shape, dtype="<i4").tobytes())
    h.update(np.ascontiguousarray(canonical_query, dtype="<i4").tobytes())
    digest = h.digest()
    return int.from_bytes(digest[:8], "little") / _TWO64, int.from_bytes(digest[8:], "little")


def prf_batch(key: bytes, canonical_queries: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """:func:`prf` of every row of a batch (the same values), from one keyed hasher."""
    base = hashlib.blake2b(key=key, digest_size=16, person=b"vtrust-dawn-v1")
    base.update(_DOMAIN)
    base.update(np.asarray(canonical_queries.shape[1:], dtype="<i4").tobytes())
    rows = np.ascontiguousarray(canonical_queries, dtype="<i4").reshape(len(canonical_queries), -1)
    u = np.empty(len(rows))
    v = []
    for i, row in enumerate(rows):
        h = base.copy()
        h.update(row.data)
        digest = h.digest()
        u[i] = int.from_bytes(digest[:8], "little") / _TWO64
        v.append(int.from_bytes(digest[8:], "little"))
    return u, v


def planted_label(true_label: int, v: int, n_classes: int) -> int:
    """The label a selected query gets: never the true one, uniform over the others."""
    return (true_label + 1 + v % (n_classes - 1)) % n_classes


def swap_classes(probs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row with its entries at columns a[i] and b[i] exchanged."""
    out = probs.copy()
    rows = np.arange(len(out))
    out[rows, a], out[rows, b] = probs[rows, b], probs[rows, a]
    return out


class PlantedIndex:
    """The planted queries (flattened), for finding a near-identical one for each new query.

    Rows live in a buffer that doubles when full. The search runs on the rows themselves
    up to :data:`SCREEN_DIM` values per query, above it on a fixed Gaussian projection to
    that many dimensions (a row within RMS distance r projects within 3r except with
    probability below 1e-11 — a χ²₈ tail, P(χ²₈ ≥ 72)), which only screens: every candidate gets the
    exact distance. The projection is public and needs no secret (it only speeds the
    search). Candidates come from a k-d tree over the older rows (rebuilt when the rows
    added since outnumber a quarter of it) and a brute-force pass over the newer ones,
    so a batch costs O(batch · log n) however many answers were planted.
    """

    def __init__(self) -> None:
        self.rows = np.zeros((0, 0), dtype=np.float32)
        self.keys = np.zeros((0, 0), dtype=np.float64)  # what the search runs on
        self.origins: list[int] = []
        self.labels: list[int] = []
        self._projection: np.ndarray | None = None
        self._tree = None
        self._tree_rows = 0

    def __len__(self) -> int:
        return len(self.origins)

    def _search_keys(self, flat: np.ndarray) -> np.ndarray:
        if flat.shape[1] <= SCREEN_DIM:
            return flat.astype(np.float64)
        if self._projection is None or self._projection.shape[0] != flat.shape[1]:
            gen = np.random.default_rng(20211020)  # public: a speed-up, not a secret
            scale = 1.0 / np.sqrt(SCREEN_DIM)
            self._projection = gen.standard_normal((flat.shape[1], SCREEN_DIM)) * scale
        return flat.astype(np.float64) @ self._projection

    def add(self, row: np.ndarray, origin: int, label: int) -> None:
        n = len(self.origins)
        key = self._search_keys(row.reshape(1, -1))[0]
        if self.rows.shape[1] != row.size:
            self.rows = np.zeros((16, row.size), dtype=np.float32)
            self.keys = np.zeros((16, key.size))
        if n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
            self.keys = np.concatenate([self.keys, np.zeros_like(self.keys)])
        self.rows[n], self.keys[n] = row, key
        self.origins.append(origin)
        self.labels.append(label)

    def nearest(self, flat: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``flat``, the index of the nearest planted query within RMS
        distance ``radius`` and that distance (inf where none is that close)."""
        n, dim = len(self.origins), flat.shape[1]
        nearest = np.zeros(len(flat), dtype=np.int64)
        rms = np.full(len(flat), np.inf)
        if n == 0:
            return nearest, rms
        bound = radius * np.sqrt(dim) * (1.0 if dim <= SCREEN_DIM else 3.0) + 1e-9
        keys = self._search_keys(flat)
        candidates = self._candidates(keys, bound, n)
        for i, found in enumerate(candidates):
            if len(found) == 0:
                continue
            exact = np.sqrt(((self.rows[found] - flat[i]) ** 2).mean(axis=1, dtype=np.float64))
            best = int(exact.argmin())
            nearest[i], rms[i] = found[best], exact[best]
        return nearest, rms

    def _candidates(self, keys: np.ndarray, bound: float, n: int) -> list[np.ndarray]:
        from sklearn.neighbors import KDTree

        if n - self._tree_rows > max(64, self._tree_rows // 4):
            self._tree, self._tree_rows = KDTree(self.keys[:n]), n
        found = [np.zeros(0, dtype=np.int64)] * len(keys)
        if self._tree is not None:
            found = list(self._tree.query_radius(keys, bound))
        if n > self._tree_rows:  # the rows planted since the tree was built
            newer = self.keys[self._tree_rows : n]
            limit = bound**2 * (1 + 1e-9) + 1e-9  # screening only: the expansion may round
            d2 = _squared_distances(keys, newer)
            for i in np.flatnonzero((d2 <= limit).any(axis=1)):
                extra = np.flatnonzero(d2[i] <= limit) + self._tree_rows
                found[i] = np.concatenate([found[i], extra])
        return found


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All squared L2 distances between the rows of ``a`` and ``b`` (by the expansion,
    which may round a tiny distance: callers screen with a margin, then measure)."""
    return (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T


class AnswerWatermark(QueryDefense):
    """The DAWN oracle defense (see the module docstring). Put it last in a chain: its
    planted answer is then what the client receives.

    Attributes:
        store: the records of what was planted.
        insecure: the secret was derived from a seed (the deployment's: experiments),
            so anyone who knows the seed can predict every planted answer.
        unrecorded: answers that would have been planted after the store filled up.
    """

    name = "answer-watermark"

    def __init__(self, params: AnswerMarkParams = AnswerMarkParams()) -> None:
        self.params = params
        owner = load_protection_key(params.key) if params.key else ProtectionKey.generate()
        self._secret = owner.secret
        self.insecure = False
        self.store = MarkStore(params.store or None, capacity=params.capacity)
        self.unrecorded = 0
        self._client_keys: dict[str, bytes] = {}
        self._seen: set[tuple[str, int]] = set()  # (client, origin) already recorded
        self._index = PlantedIndex()  # the planted queries, to find near-identical ones
        self._queries: dict[str, int] = {}  # queries each client asked so far
        for record in self.store:
            self._remember(record)
        self.n_classes: int | None = None

    def bind(self, context) -> None:
        self.n_classes = context.n_classes
        if context.seed is not None and not self.params.key:
            self._secret = ProtectionKey.generate(context.seed).secret
            self.insecure = True
        if self.n_classes < 2:
            raise InputError("an answer watermark needs at least 2 classes")

    @property
    def fingerprint(self) -> str:
        """Identifies the owner secret in use (reveals nothing of it)."""
        return ProtectionKey(self._secret).fingerprint

    def _key(self, client_id: str) -> bytes:
        if client_id not in self._client_keys:
            self._client_keys[client_id] = client_key(self._secret, client_id)
        return self._client_keys[client_id]

    def _remember(self, record: MarkRecord) -> None:
        self._seen.add((record.client, record.origin))
        self._queries[record.client] = max(self._queries.get(record.client, 0), record.query + 1)
        if record.of is None:
            self._index.add(record.input().reshape(-1), record.id, record.planted)

    def transform(self, client_id, x, probs):
        n_classes = probs.shape[1]
        if n_classes < 2 or len(x) == 0:
            return probs
        step, radius = self.params.step, self.params.radius
        canon = canonical(x, step)
        flat = (canon.reshape(len(x), -1).astype(np.float64) * step).astype(np.float32)
        top = probs.argmax(axis=1)
        answer = top.copy()
        nearest, rms = self._index.nearest(flat, radius)
        key = self._key(client_id)
        first_query = self._queries.get(client_id, 0)
        selector, label_bits = prf_batch(key, canon)
        records: list[MarkRecord] = []

        def record(i: int, label: int, of: int | None) -> MarkRecord:
            made = MarkRecord(self.store.next_id() + len(records), client_id,
                              first_query + i, canon[i].copy(), float(step), int(top[i]),
                              int(label), of)  # fmt: skip
            records.append(made)
            self._remember(made)
            return made

        for i in range(len(x)):
            if rms[i] <= radius:  # a planted answer repeats for a near-identical query
                origin, label = self._index.origins[nearest[i]], self._index.labels[nearest[i]]
                answer[i] = label
                if label != top[i] and (client_id, origin) not in self._seen:
                    record(i, label, origin)
                continue
            if selector[i] >= self.params.rate:
                continue
            if len(self.store) + len(records) >= self.store.capacity:
                self.unrecorded += 1
                continue
            answer[i] = planted_label(int(top[i]), label_bits[i], n_classes)
            record(i, answer[i], None)
            # the later queries of this batch near it repeat it too
            later = flat[i + 1 :].astype(np.float64) - flat[i].astype(np.float64)
            dist = np.sqrt((later**2).mean(axis=1))
            closer = np.flatnonzero((dist <= radius) & (dist < rms[i + 1 :])) + i + 1
            rms[closer] = dist[closer - i - 1]
            nearest[closer] = len(self._index) - 1
        self.store.append(records)
        self._queries[client_id] = first_query + len(x)
        return swap_classes(probs, top, answer)


register("defenses", "answer-watermark", AnswerMarkParams, "DAWN: keyed wrong answers, traced")(
    AnswerWatermark
)
