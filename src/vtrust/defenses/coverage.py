"""Extraction warning by coverage of the model's decision regions (after Kesarwani et
al., ACSAC 2018, "Model extraction warning in MLaaS paradigm").

The paper watches what share of a decision tree's regions a user's queries have
reached: a user who has queried every leaf has, in effect, been shown the whole tree.
vtrust generalises it to any network by approximating the network's decision regions
with a tree of its own: the defender's data (and noisy copies of it, to populate the
regions near the boundaries) is projected onto its leading principal components and
labelled by the model, and a decision tree with at most ``leaves`` leaves is fitted to
those labels. Each leaf is a region where the model predicts one class; its *mass* is
the share of the defender's data that falls in it. A query *teaches* a leaf when it
falls in it and the model's answer is the leaf's class (the information the paper's
gain counts: a query the model answers otherwise says nothing about that region). A
client's **stealing progress** is the total mass of the leaves its queries have taught
(at least ``hits`` queries each) — 0 before any query, 1 when it has been shown every
region the defender's data occupies.

It is an estimate of what a thief *could* have learnt, not a measurement of what it
did; ``experiments/stealing.py`` measures how it tracks the fidelity of each extraction
attack's thief and how often benign clients raise it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.tree import DecisionTreeClassifier

from vtrust.catalog import register
from vtrust.defenses.detection import AlarmParams, DetectorState, StreamDetector
from vtrust.errors import InputError
from vtrust.models.training import predict_proba

NOISE = 0.1  # std of the noisy copies of the defender's data (inputs scaled to [0, 1])


@dataclass(frozen=True)
class CoverageParams(AlarmParams):
    """Attributes:
    leaves: most leaves of the region tree.
    components: principal components the tree splits on.
    hits: queries a leaf needs before it counts as reached.
    threshold: stealing progress (0–1) at which the client raises the alarm.
    """

    leaves: int = 128
    components: int = 20
    hits: int = 1
    threshold: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.leaves < 2 or self.components < 1 or self.hits < 1:
            raise InputError(f"need leaves ≥ 2, components ≥ 1, hits ≥ 1; got {self.leaves}, "
                             f"{self.components}, {self.hits}")  # fmt: skip
        if not 0 < self.threshold <= 1:
            raise InputError(f"threshold is a share of the regions, in (0, 1]: {self.threshold}")


class DecisionRegions:
    """The model's decision regions as the leaves of a tree over principal components.

    Attributes:
        mass: per leaf (in :meth:`leaf` numbering), the share of the defender's data in it.
        classes: per leaf, the class the model predicts there (the tree's majority).
    """

    def __init__(self, model: Any, x: np.ndarray, leaves: int, components: int,
                 seed: int) -> None:  # fmt: skip
        flat = x.reshape(len(x), -1).astype(np.float64)
        rng = np.random.default_rng(seed)
        noisy = np.clip(flat + rng.normal(0.0, NOISE, flat.shape), 0.0, 1.0)
        grown = np.concatenate([flat, noisy])
        labels = predict_proba(model, grown.reshape(-1, *x.shape[1:]).astype(np.float32))
        self.pca = PCA(n_components=min(components, *flat.shape), random_state=seed).fit(flat)
        self.tree = DecisionTreeClassifier(max_leaf_nodes=leaves, random_state=seed)
        self.tree.fit(self.pca.transform(grown), labels.argmax(axis=1))
        self._mean, self._axes = self.pca.mean_, self.pca.components_.T.copy()
        nodes = self.tree.tree_.node_count
        self._index = np.full(nodes, -1, dtype=np.int64)
        is_leaf = self.tree.tree_.children_left == -1
        self._n_leaves = int(is_leaf.sum())
        self._index[is_leaf] = np.arange(self._n_leaves)
        self.mass = np.bincount(self.leaf(x), minlength=self.n_leaves) / len(x)
        values = self.tree.tree_.value[is_leaf].reshape(int(is_leaf.sum()), -1)
        self.classes = self.tree.classes_[values.argmax(axis=1)]

    def taught(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Per query, the leaf it teaches (−1: the model's answer is not the leaf's class)."""
        leaves = self.leaf(x)
        return np.where(self.classes[leaves] == probs.argmax(axis=1), leaves, -1)

    @property
    def n_leaves(self) -> int:
        return self._n_leaves

    def leaf(self, x: np.ndarray) -> np.ndarray:
        """The leaf (0 … n_leaves − 1) each query falls in."""
        if len(x) == 0:
            return np.zeros(0, dtype=np.int64)
        # PCA.transform and DecisionTreeClassifier.apply by hand: the same arithmetic
        # (float64 projection; the tree compares float32 features) without their input
        # validation, which costs ≈ 10× the work on a 256-query batch
        flat = x.reshape(len(x), self._mean.size).astype(np.float64)
        projected = np.ascontiguousarray((flat - self._mean) @ self._axes, dtype=np.float32)
        return self._index[self.tree.tree_.apply(projected)]

    def progress(self, counts: np.ndarray, hits: int = 1) -> float:
        """Stealing progress of per-leaf query ``counts``: the mass of reached leaves."""
        return float(self.mass[counts >= hits].sum())


class CoverageState(DetectorState):
    """One scope's queries per leaf (and the query count)."""

    def __init__(self, n_leaves: int = 0) -> None:
        self.counts = np.zeros(n_leaves, dtype=np.int64)
        self.queries = 0
        self.alarm_at = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "queries": np.array([self.queries]),
                "alarm_at": np.array([-1 if self.alarm_at is None else self.alarm_at])}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CoverageState:
        state = cls()
        state.counts = np.asarray(arrays["counts"], dtype=np.int64)
        if state.counts.ndim != 1 or (state.counts < 0).any():
            raise ValueError("counts must be a vector of non-negative integers")
        state.queries = int(arrays["queries"][0])
        at = int(arrays["alarm_at"][0])
        state.alarm_at = None if at < 0 else at
        return state


class ExtractionWarning(StreamDetector):
    """Stealing progress per client id, an alarm when it reaches ``threshold`` (an id
    rotation splits the progress: pair it with ``shift-global`` against sybils)."""

    name = "extraction-warning"
    state_class = CoverageState

    def __init__(self, params: CoverageParams = CoverageParams()) -> None:
        super().__init__(params)
        self.regions: DecisionRegions | None = None

    def bind(self, context: Any) -> None:
        super().bind(context)
        p = self.params
        self.regions = DecisionRegions(context.model, context.reference.x, p.leaves,
                                       p.components, context.seed or 0)  # fmt: skip

    def new_state(self) -> CoverageState:
        return CoverageState(self._regions().n_leaves)

    def _regions(self) -> DecisionRegions:
        if self.regions is None:
            raise InputError("the extraction warning needs the model and its data: bind() it")
        return self.regions

    def update(self, state: CoverageState, x: np.ndarray, probs: np.ndarray,
               client_id: str) -> int | None:  # fmt: skip
        regions = self._regions()
        if len(state.counts) != regions.n_leaves:
            raise InputError(f"a state of {len(state.counts)} leaves for a tree of "
                             f"{regions.n_leaves}: saved by another deployment")  # fmt: skip
        after = walk(regions, state.counts, regions.taught(x, probs), self.params.hits)
        crossed = np.flatnonzero(after >= self.params.threshold)
        first = int(crossed[0]) if len(crossed) and state.alarm_at is None else None
        if first is not None:
            state.alarm_at = state.queries + first
        state.queries += len(x)
        return first

    def stealing_progress(self, client_id: str) -> float:
        """The client's stealing progress so far, 0–1 (frozen once it raised the alarm:
        an alarmed client's queries are no longer fed in)."""
        state = self.states.get(client_id)
        if state is None:
            return 0.0
        return self._regions().progress(state.counts, self.params.hits)

    def progress_of(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Stealing progress after each query of the sequence ``x`` that the model
        answered with ``probs`` (for studies)."""
        regions = self._regions()
        counts = np.zeros(regions.n_leaves, dtype=np.int64)
        return walk(regions, counts, regions.taught(x, probs), self.params.hits)


def walk(regions: DecisionRegions, counts: np.ndarray, leaves: np.ndarray, hits: int) -> np.ndarray:
    """Add each query's taught leaf to ``counts`` (in place; −1 teaches nothing); the
    progress after each query. Vectorised: a leaf is newly reached at the query whose
    occurrence, counted on from ``counts``, is the ``hits``-th."""
    reached = regions.progress(counts, hits)
    at = np.flatnonzero(leaves >= 0)
    taught = leaves[at]
    order = np.argsort(taught, kind="stable")
    ranked = taught[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    sizes = np.diff(np.r_[starts, len(ranked)])
    occurrence = np.empty(len(taught), dtype=np.int64)
    occurrence[order] = np.arange(len(ranked)) - np.repeat(starts, sizes)
    newly = counts[taught] + occurrence + 1 == hits
    gain = np.zeros(len(leaves))
    gain[at[newly]] = regions.mass[taught[newly]]
    np.add.at(counts, taught, 1)
    return reached + np.cumsum(gain)


register("defenses", "extraction-warning", CoverageParams,
         "stealing progress: mass of the model's decision regions a client has reached")(
    ExtractionWarning)  # fmt: skip
