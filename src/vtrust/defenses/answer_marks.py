"""Answer watermarks (DAWN, Szyller et al., ACM MM 2021): a few answers carry a secret,
so a model trained on the oracle's answers carries it too.

For each query the oracle computes a keyed PRF of the query's canonical form (the input
quantised to ``step``; :class:`~vtrust.defenses.answer_prf.AnswerPrf`: a secret universal
hash, then AES CBC-MAC under the client's key, HKDF(owner secret,
``answer-mark:client:<id>``), batched). An owner-level value of the same kind
selects the query with probability ``rate`` — the same inputs for every client, so a
popular input is not marked more often for being asked by many; the client's 64 bits
pick the planted label among the C − 1 classes the model does
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

from dataclasses import dataclass

import numpy as np

from vtrust.catalog import register
from vtrust.defenses.answer_prf import AnswerPrf
from vtrust.errors import InputError
from vtrust.keying import ProtectionKey, load_protection_key
from vtrust.oracle import QueryDefense
from vtrust.ownership.mark_store import DEFAULT_CAPACITY, MarkRecord, MarkStore, dequantise

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
    """The integer form of a batch of queries: ``round(x · (1/step))`` computed in float32
    (ties to even) as int32 (InputError if a value does not fit)."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(1.0 / step)
    np.rint(scaled, out=scaled)
    if scaled.size and not (scaled.min() > -(2.0**31) and scaled.max() < 2.0**31 - 128):
        raise InputError(f"query values too large (or not finite) for the quantisation step {step}")
    return scaled.astype(np.int32)


def planted_label(true_label: int, v: int, n_classes: int) -> int:
    """The label a selected query gets: never the true one, uniform over the others
    (``v`` is 64 random bits: the bias of ``v mod (C − 1)`` is below 2⁻⁵⁸)."""
    return (int(true_label) + 1 + int(v) % (n_classes - 1)) % n_classes


def swap_classes(probs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row with its entries at columns a[i] and b[i] exchanged."""
    out = probs.copy()
    rows = np.arange(len(out))
    out[rows, a], out[rows, b] = probs[rows, b], probs[rows, a]
    return out


SCAN_ROWS = 1024  # up to this many rows, one matrix product screens them all
BUFFER_ROWS = 128  # beyond, the newest rows no tree holds yet
SINGLE_TREE_ROWS = 16384  # up to this many rows, one tree (rebuilt: ≤ 5 ms)
RECENT_SHARE = 16  # beyond: a recent tree of up to 1/16 of the old one's rows


class PlantedIndex:
    """The planted queries (flattened), for finding a near-identical one for each new query.

    Rows live in a buffer that doubles when full. The search runs on the rows themselves
    up to :data:`SCREEN_DIM` values per query, above it on a fixed Gaussian projection to
    that many dimensions (a row within RMS distance r projects within 3r·√d except with
    probability below 1e-11 — a χ²₈ tail, P(χ²₈ ≥ 72)), which only screens: every
    candidate gets the exact distance. The projection is public and needs no secret (it
    only speeds the search).

    Screening is levelled so that a batch costs O(batch · log n) and planting stays
    cheap however many rows there are: up to :data:`SCAN_ROWS` rows one matrix product;
    beyond, a k-d tree rebuilt every :data:`BUFFER_ROWS` plantings and one product for
    the newest rows it does not hold yet. Beyond :data:`SINGLE_TREE_ROWS` rows the tree
    is an *old* one and a *recent* one over the rows planted since, folded into the old
    one once it holds 1/:data:`RECENT_SHARE` as many rows. Each tree is first asked for
    a nearest row within the bound (most queries have none), and only the queries that
    have one for all rows within it.
    """

    def __init__(self) -> None:
        self.rows = np.zeros((0, 0), dtype=np.float32)
        self.keys = np.zeros((0, 0), dtype=np.float32)  # what the search runs on
        self.key_norms = np.zeros(0, dtype=np.float32)
        self._center: np.ndarray | None = None  # keys are centred on the first planted one
        self.origins: list[int] = []
        self.labels: list[int] = []
        self._projection: np.ndarray | None = None
        self._trees: list[tuple[object, int]] = []  # (k-d tree, first row), old then recent
        self._indexed = 0  # rows held by the trees
        self._old_rows = 0  # rows held by the old tree

    def __len__(self) -> int:
        return len(self.origins)

    def _search_keys(self, flat: np.ndarray) -> np.ndarray:
        """float32 search keys (the rows, or their projection), centred."""
        if flat.shape[1] <= SCREEN_DIM:
            keys = flat.astype(np.float32)
        else:
            if self._projection is None or self._projection.shape[0] != flat.shape[1]:
                gen = np.random.default_rng(20211020)  # public: a speed-up, not a secret
                gauss = gen.standard_normal((flat.shape[1], SCREEN_DIM)) / np.sqrt(SCREEN_DIM)
                self._projection = gauss.astype(np.float32)
            keys = flat.astype(np.float32, copy=False) @ self._projection
        if self._center is None or self._center.shape[0] != keys.shape[1]:
            self._center = keys[0].copy()
        return keys - self._center

    def add(self, row: np.ndarray, origin: int, label: int) -> None:
        n = len(self.origins)
        key = self._search_keys(row.reshape(1, -1))[0]
        if self.rows.shape[1] != row.size:
            self.rows = np.zeros((16, row.size), dtype=np.float32)
            self.keys = np.zeros((16, key.size), dtype=np.float32)
            self.key_norms = np.zeros(16, dtype=np.float32)
        if n == len(self.rows):
            self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
            self.keys = np.concatenate([self.keys, np.zeros_like(self.keys)])
            self.key_norms = np.concatenate([self.key_norms, np.zeros_like(self.key_norms)])
        self.rows[n], self.keys[n], self.key_norms[n] = row, key, key @ key
        self.origins.append(origin)
        self.labels.append(label)
        if n + 1 > SCAN_ROWS and n + 1 - self._indexed >= BUFFER_ROWS:
            self._reindex(n + 1)

    def _reindex(self, n: int) -> None:
        from scipy.spatial import cKDTree

        if n <= SINGLE_TREE_ROWS or n - self._old_rows > self._old_rows // RECENT_SHARE:
            self._old_rows = n  # fold the recent rows into the old tree
            self._trees = [(cKDTree(self.keys[:n].astype(np.float64)), 0)]
        else:
            recent = cKDTree(self.keys[self._old_rows : n].astype(np.float64))
            self._trees = [*self._trees[:1], (recent, self._old_rows)]
        self._indexed = n

    def nearest(self, flat: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """For each row of ``flat``, the index of the nearest planted query within RMS
        distance ``radius`` and that distance (inf where none is that close)."""
        n, dim = len(self.origins), flat.shape[1]
        nearest = np.zeros(len(flat), dtype=np.int64)
        rms = np.full(len(flat), np.inf)
        if n == 0:
            return nearest, rms
        bound = radius * np.sqrt(dim) * (1.0 if dim <= SCREEN_DIM else 3.0) + 1e-9
        queries, planted = self._candidates(self._search_keys(flat), bound, n)
        if len(queries) == 0:
            return nearest, rms
        diff = self.rows[planted].astype(np.float64) - flat[queries].astype(np.float64)
        exact = np.sqrt((diff**2).mean(axis=1))
        keep = exact <= radius
        queries, planted, exact = queries[keep], planted[keep], exact[keep]
        order = np.lexsort((exact, queries))  # per query, nearest first
        queries, planted, exact = queries[order], planted[order], exact[order]
        first = np.ones(len(queries), dtype=bool)
        first[1:] = queries[1:] != queries[:-1]
        nearest[queries[first]], rms[queries[first]] = planted[first], exact[first]
        return nearest, rms

    def _candidates(self, keys: np.ndarray, bound: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(query index, planted index) pairs whose search keys lie within ``bound``
        (a superset: float32 keys, so every limit carries a rounding margin)."""
        pairs_q, pairs_p = [], []
        query_norms = (keys**2).sum(axis=1)
        scale = float(query_norms.max())
        margin = bound * (1 + 1e-5) + 1e-6 * np.sqrt(scale) + 1e-9
        wide = keys.astype(np.float64)
        for tree, first_row in self._trees:
            dist, _ = tree.query(wide, k=1, distance_upper_bound=margin)
            near = np.flatnonzero(np.isfinite(dist))
            for i, found in zip(near, tree.query_ball_point(wide[near], margin), strict=True):
                pairs_q.append(np.full(len(found), i, dtype=np.int64))
                pairs_p.append(np.asarray(found, dtype=np.int64) + first_row)
        if n > self._indexed:  # the newest rows: one product, d² = |q|² − 2 q·k + |k|²
            newest = slice(self._indexed, n)
            d2 = keys @ self.keys[newest].T
            d2 *= np.float32(-2.0)
            d2 += self.key_norms[newest]
            d2 += query_norms[:, None]
            scale += float(self.key_norms[newest].max())
            limit = np.float32(bound**2 * (1 + 1e-5) + 1e-6 * scale + 1e-9)
            hit = d2 <= limit
            rows = np.flatnonzero(hit.any(axis=1))  # few: a 2-D nonzero is slow
            hit_q, hit_p = np.nonzero(hit[rows])
            pairs_q.append(rows[hit_q].astype(np.int64))
            pairs_p.append(hit_p.astype(np.int64) + self._indexed)
        if not pairs_q:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(pairs_q), np.concatenate(pairs_p)


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
        self._prf = AnswerPrf(self._secret)
        self.insecure = False
        self.store = MarkStore(params.store or None, capacity=params.capacity)
        self.unrecorded = 0
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
            self._prf = AnswerPrf(self._secret)
            self.insecure = True
        if self.n_classes < 2:
            raise InputError("an answer watermark needs at least 2 classes")

    @property
    def fingerprint(self) -> str:
        """Identifies the owner secret in use (reveals nothing of it)."""
        return ProtectionKey(self._secret).fingerprint

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
        flat = dequantise(canon.reshape(len(x), -1), step)  # as the index holds it
        top = probs.argmax(axis=1)
        answer = top.copy()
        nearest, rms = self._index.nearest(flat, radius)
        first_query = self._queries.get(client_id, 0)
        # selection owner-level (the same for every client), label bits the client's own
        selector, label_bits = self._prf.select_and_label(client_id, canon)
        records: list[MarkRecord] = []

        def record(i: int, label: int, of: int | None) -> None:
            made = MarkRecord(self.store.next_id() + len(records), client_id,
                              first_query + i, canon[i].copy(), float(step), int(top[i]),
                              int(label), of)  # fmt: skip
            records.append(made)
            self._remember(made)

        pending = sorted(np.flatnonzero((rms <= radius) | (selector < self.params.rate)))
        while pending:  # the few queries that are marked or near a marked one, in order
            i = int(pending.pop(0))
            if rms[i] <= radius:  # a planted answer repeats for a near-identical query
                origin, label = self._index.origins[nearest[i]], self._index.labels[nearest[i]]
                answer[i] = label
                if label != top[i] and (client_id, origin) not in self._seen:
                    record(i, label, origin)
                continue
            if len(self.store) + len(records) >= self.store.capacity:
                self.unrecorded += 1
                continue
            answer[i] = planted_label(top[i], label_bits[i], n_classes)
            record(i, answer[i], None)
            # the later queries of this batch near it repeat it too
            later = flat[i + 1 :].astype(np.float64) - flat[i].astype(np.float64)
            dist = np.sqrt((later**2).mean(axis=1))
            closer = np.flatnonzero((dist <= radius) & (dist < rms[i + 1 :])) + i + 1
            rms[closer] = dist[closer - i - 1]
            nearest[closer] = len(self._index) - 1
            pending = sorted(set(pending) | set(closer.tolist()))
        self.store.append(records)
        self._queries[client_id] = first_query + len(x)
        return swap_classes(probs, top, answer) if records or (answer != top).any() else probs


register("defenses", "answer-watermark", AnswerMarkParams, "DAWN: keyed wrong answers, traced")(
    AnswerWatermark
)
