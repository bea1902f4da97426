"""PRADA (Juuti et al., EuroS&P 2019): detect model-stealing query streams per client.

For each client and each predicted class the detector keeps a *growing set* of past
queries. Every new query of class ``c`` contributes its minimum L2 distance to the set of
``c`` to the client's distance stream; if that distance exceeds the class threshold
``T_c`` the query joins the set and ``T_c ← max(T_c, mean − std)`` of the set's recorded
distances (the first member counts as distance 0). Benign queries give roughly normally
distributed distances; synthetic attack queries (small steps from earlier ones, random
noise) do not. Every ``test_every`` queries, once classes with at least
``min_per_class`` distances pool more than ``min_samples`` of them, outliers beyond
``outlier_sigma`` standard deviations are dropped and the Shapiro–Wilk statistic ``W``
of the rest is compared with ``delta``: ``W < delta`` raises the alarm.

Distances are computed with one matrix product per class and batch (``|a−b|² =
|a|² + |b|² − 2a·b`` against cached norms); only the order-dependent set update runs
query by query, on numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from vtrust.catalog import register
from vtrust.defenses.detection import AlarmParams, DetectorState, StreamDetector
from vtrust.errors import InputError


@dataclass(frozen=True)
class PradaParams(AlarmParams):
    """Detector settings (defaults follow the reference implementation).

    Attributes:
        delta: alarm when the Shapiro–Wilk ``W`` of the distance stream is below this.
        min_samples: test only once more than this many distances are pooled.
        min_per_class: pool a class's distances only once it has this many.
        test_every: run the test after every this many queries of a client.
        outlier_sigma: drop distances further than this many standard deviations from
            the mean before testing.
        (and ``action``/``poison`` from :class:`~vtrust.defenses.detection.AlarmParams`)
    """

    delta: float = 0.95
    min_samples: int = 100
    min_per_class: int = 10
    test_every: int = 10
    outlier_sigma: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.delta <= 1.0:
            raise InputError(f"delta must be in (0, 1], got {self.delta}")
        if self.min_samples < 3 or self.min_per_class < 1 or self.test_every < 1:
            raise InputError("min_samples ≥ 3, min_per_class ≥ 1 and test_every ≥ 1 required")
        if self.outlier_sigma <= 0:
            raise InputError(f"outlier_sigma must be positive, got {self.outlier_sigma}")


class _Buffer:
    """A growable float array (amortised O(1) append of rows or values)."""

    def __init__(self, width: int | None, dtype: type = np.float64, capacity: int = 64) -> None:
        shape = (capacity,) if width is None else (capacity, width)
        self.data = np.empty(shape, dtype=dtype)
        self.size = 0

    @classmethod
    def of(cls, values: np.ndarray) -> _Buffer:
        buf = cls(None if values.ndim == 1 else values.shape[1], values.dtype.type)
        buf.extend(values)
        return buf

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty((max(need, 2 * len(self.data)), *self.data.shape[1:]), self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : need] = values
        self.size = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]


class _ClassSet:
    """The growing set of one class: members, their squared norms, the distances they
    were admitted with (running sums), and the admission threshold."""

    def __init__(self, dim: int) -> None:
        self.points = _Buffer(dim, np.float32)
        self.sqnorms = _Buffer(None)
        self.n_dists = 0
        self.dist_sum = 0.0
        self.dist_sumsq = 0.0
        self.threshold = 0.0

    def admit(self, points: np.ndarray, sqnorms: np.ndarray, dists: list[float]) -> None:
        self.points.extend(points)
        self.sqnorms.extend(sqnorms)
        for d in dists:
            self.n_dists += 1
            self.dist_sum += d
            self.dist_sumsq += d * d
            mean = self.dist_sum / self.n_dists
            std = np.sqrt(max(self.dist_sumsq / self.n_dists - mean * mean, 0.0))
            self.threshold = max(self.threshold, mean - std)


class PradaState(DetectorState):
    """One client's PRADA state: a growing set per class and the distance stream."""

    def __init__(self) -> None:
        self.sets: dict[int, _ClassSet] = {}
        self.stream_d = _Buffer(None)  # minimum distances, in query order
        self.stream_c = _Buffer(None, np.int64)  # their classes
        self.stream_q = _Buffer(None, np.int64)  # their query indices
        self.queries = 0
        self.alarm_at: int | None = None
        self.last_w: float | None = None
        self.min_w: float | None = None  # lowest W seen: the margin a benign client left

    @property
    def stored(self) -> int:
        """Queries held in the growing sets."""
        return sum(s.points.size for s in self.sets.values())

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "stream_d": self.stream_d.view,
            "stream_c": self.stream_c.view,
            "stream_q": self.stream_q.view,
            "counters": np.array(
                [self.queries, -1 if self.alarm_at is None else self.alarm_at], np.int64
            ),
            "w": np.array([np.nan if w is None else w for w in (self.last_w, self.min_w)]),
            "classes": np.array(sorted(self.sets), np.int64),
        }
        for c, s in self.sets.items():
            out[f"points{c}"] = s.points.view
            out[f"sums{c}"] = np.array([s.n_dists, s.dist_sum, s.dist_sumsq, s.threshold])
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PradaState:
        state = cls()
        d, c, q = arrays["stream_d"], arrays["stream_c"], arrays["stream_q"]
        if not (d.ndim == c.ndim == q.ndim == 1 and len(d) == len(c) == len(q)):
            raise ValueError("distance stream arrays disagree in shape")
        state.stream_d = _Buffer.of(d.astype(np.float64))
        state.stream_c = _Buffer.of(c.astype(np.int64))
        state.stream_q = _Buffer.of(q.astype(np.int64))
        queries, alarm = (int(v) for v in arrays["counters"])
        state.queries, state.alarm_at = queries, (None if alarm < 0 else alarm)
        state.last_w, state.min_w = (None if np.isnan(w) else float(w) for w in arrays["w"])
        for cls_id in arrays["classes"]:
            points = arrays[f"points{int(cls_id)}"].astype(np.float32)
            if points.ndim != 2 or len(points) == 0:
                raise ValueError(f"growing set of class {int(cls_id)} is not a matrix")
            n, total, total_sq, threshold = arrays[f"sums{int(cls_id)}"]
            s = _ClassSet(points.shape[1])
            s.points.extend(points)
            s.sqnorms.extend((points.astype(np.float64) ** 2).sum(axis=1))
            s.n_dists, s.dist_sum, s.dist_sumsq = int(n), float(total), float(total_sq)
            s.threshold = float(threshold)
            state.sets[int(cls_id)] = s
        return state


def _sq_distances(q: np.ndarray, q_sq: np.ndarray, p: np.ndarray, p_sq: np.ndarray):
    """Squared L2 distances (len(q), len(p)), clipped at 0 against rounding."""
    d = q_sq[:, None] + p_sq[None, :] - 2.0 * (q @ p.T).astype(np.float64)
    return np.maximum(d, 0.0)


class Prada(StreamDetector):
    """The PRADA detector as an oracle defense (per-client state)."""

    name = "prada"
    state_class = PradaState

    def __init__(self, params: PradaParams = PradaParams()) -> None:
        super().__init__(params)

    def update(
        self, state: PradaState, x: np.ndarray, probs: np.ndarray, client_id: str = ""
    ) -> int | None:
        flat = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
        sq = (flat.astype(np.float64) ** 2).sum(axis=1)
        labels = probs.argmax(axis=1)
        dmin = np.full(len(x), np.nan)  # NaN: first query of its class, no distance
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            dmin[idx] = self._class_batch(state, int(c), flat[idx], sq[idx])
        has = ~np.isnan(dmin)
        first = state.queries
        state.stream_d.extend(np.sqrt(dmin[has]))
        state.stream_c.extend(labels[has].astype(np.int64))
        state.stream_q.extend(first + np.flatnonzero(has))
        state.queries += len(x)
        if state.alarm_at is not None:
            return None
        every = self.params.test_every
        for q in range(first + (-(first + 1)) % every, first + len(x), every):
            if self._test(state, q):
                state.alarm_at = q
                return q - first
        return None

    def _class_batch(self, state: PradaState, c: int, q: np.ndarray, q_sq: np.ndarray):
        """Squared minimum distances of a batch of class-``c`` queries, in order, with
        the growing-set updates they cause."""
        s = state.sets.get(c)
        if s is None:
            s = state.sets[c] = _ClassSet(q.shape[1])
            s.admit(q[:1], q_sq[:1], [0.0])
            out = np.full(len(q), np.nan)
            if len(q) > 1:
                out[1:] = self._class_batch(state, c, q[1:], q_sq[1:])
            return out
        to_set = _sq_distances(q, q_sq, s.points.view, s.sqnorms.view).min(axis=1)
        within = _sq_distances(q, q_sq, q, q_sq)
        admitted: list[int] = []
        out = np.empty(len(q))
        for i in range(len(q)):
            d2 = to_set[i]
            if admitted:
                d2 = min(d2, within[i, admitted].min())
            out[i] = d2
            d = float(np.sqrt(d2))
            if d > s.threshold:
                admitted.append(i)
                s.admit(q[i : i + 1], q_sq[i : i + 1], [d])
        return out

    def _test(self, state: PradaState, query: int) -> bool:
        """The Shapiro–Wilk test on the distances recorded up to ``query``."""
        n = int(np.searchsorted(state.stream_q.view, query, side="right"))
        if n <= self.params.min_samples:
            return False
        d, c = state.stream_d.view[:n], state.stream_c.view[:n]
        counts = np.bincount(c)
        pooled = d[counts[c] >= self.params.min_per_class]
        if len(pooled) <= self.params.min_samples:
            return False
        mean, std = pooled.mean(), pooled.std()
        kept = pooled[np.abs(pooled - mean) < self.params.outlier_sigma * std]
        if len(kept) <= self.params.min_samples or np.ptp(kept) == 0:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns that p-values are rough for N > 5000
            w = float(stats.shapiro(kept).statistic)
        state.last_w = w
        state.min_w = w if state.min_w is None else min(state.min_w, w)
        return w < self.params.delta


register("defenses", "prada", PradaParams, "PRADA: Shapiro–Wilk test on query distances")(Prada)
