"""Non-adaptive extraction: draw queries from a source, label them with the oracle, train.

Three attacks of the literature are this one procedure with different sources and labels:

* **random queries** (Tramèr et al. 2016, "retraining"): uniform or Gaussian inputs;
* **Knockoff Nets, random strategy** (Orekondy et al. 2019): natural images or the
  attacker's own in-distribution data, trained on the returned probabilities;
* **CopycatCNN** (Correia-Silva et al. 2018): non-problem-domain (natural) images labelled
  with the victim's top-1 class only.

and one adaptive variant of the first: **line-search retraining** (Tramèr et al.), which
bisects segments between random queries of different classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vtrust.attacks.base import AttackerResources, finish
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams, Source, draw_inputs
from vtrust.catalog import register
from vtrust.errors import InputError

QUERY_BATCH = 100


@dataclass(frozen=True)
class RandomQueriesParams(ExtractionParams):
    source: Literal["uniform", "gaussian"] = "uniform"


@dataclass(frozen=True)
class CopycatParams(ExtractionParams):
    source: Literal["natural", "attacker"] = "natural"
    labels_only: bool = True


class PoolSampling(ExtractionAttack):
    """Query ``budget`` inputs drawn from ``params.source`` and train a thief on them."""

    kind = "random-queries"

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        params = self.params
        session, timer, rng = self.start(resources, budget, seed)
        source: Source = params.source  # type: ignore[attr-defined]
        with timer.stage("draw"):
            inputs = draw_inputs(source, session.budget, resources, rng)
        with timer.stage("query"):
            for start in range(0, len(inputs), QUERY_BATCH):
                if len(session.ask(inputs[start : start + QUERY_BATCH])) == 0:
                    break
        return finish(
            self.kind, session, timer, params.training, seed=seed, details={"source": source}
        )


class Copycat(PoolSampling):
    kind = "copycat"


@dataclass(frozen=True)
class LineSearchParams(ExtractionParams):
    """Line-search retraining: ``seeds`` random queries, then binary searches of
    ``steps`` midpoints each between queried points of different classes, ``pairs``
    segments at a time."""

    source: Literal["uniform", "gaussian", "attacker"] = "uniform"
    seeds: int = 100
    steps: int = 6
    pairs: int = 50
    mix_natural: float = 0.0
    bounded_steps: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seeds < 2 or self.steps < 1 or self.pairs < 1:
            raise InputError("line search needs seeds ≥ 2, steps ≥ 1 and pairs ≥ 1")
        if not 0.0 <= self.mix_natural < 1.0:
            raise InputError(f"mix_natural must be in [0, 1), got {self.mix_natural}")


def nearest_gaps(x: np.ndarray) -> np.ndarray:
    """Each image's L2 distance to the nearest other one: the attacker's estimate of the
    gaps in a benign client's query stream (what PRADA's statistic is made of)."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    sq = (flat**2).sum(axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


class LineSearchRetraining(ExtractionAttack):
    """Tramèr et al. (2016), adaptive retraining by line search: after random queries,
    repeatedly bisect segments between points the victim labels differently, so the
    transfer set concentrates near the decision boundaries.

    Against PRADA (whose alarm is a stream of ever-smaller gaps between a client's
    queries — exactly what bisection makes): ``bounded_steps`` stops bisecting a segment
    once its half-length falls below a draw from the gaps between the attacker's own
    in-distribution images, and ``mix_natural`` interleaves that share of queries with
    those images."""

    kind = "line-search"

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        params: LineSearchParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        gaps = None
        if params.bounded_steps:
            if resources.data is None or len(resources.data) < 2:
                raise InputError("bounded_steps estimates benign gaps from attacker data")
            gaps = nearest_gaps(resources.data.x)
        with timer.stage("query"):
            points = draw_inputs(params.source, min(params.seeds, session.budget), resources, rng)
            labels = session.ask(points).argmax(axis=1)
            points = points[: len(labels)]
            while not session.exhausted and len(labels) >= 2:
                a_idx = rng.integers(0, len(labels), params.pairs)
                b_idx = rng.integers(0, len(labels), params.pairs)
                keep = labels[a_idx] != labels[b_idx]
                if not keep.any():  # one class everywhere: widen the search with new seeds
                    extra = draw_inputs(params.source, params.pairs, resources, rng)
                    got = session.ask(extra).argmax(axis=1)
                    points = np.concatenate([points, extra[: len(got)]])
                    labels = np.concatenate([labels, got])
                    continue
                a, b = points[a_idx[keep]].copy(), points[b_idx[keep]].copy()
                la = labels[a_idx[keep]]
                for _ in range(params.steps):
                    if gaps is not None:  # only segments still wider than a benign gap
                        half = np.sqrt(((a - b).reshape(len(a), -1) ** 2).sum(axis=1)) / 2
                        wide = half >= rng.choice(gaps, size=len(a))
                        a, b, la = a[wide], b[wide], la[wide]
                        if len(a) == 0:
                            break
                    mid = (a + b) / 2
                    got = session.ask(mid).argmax(axis=1)
                    if len(got) < len(mid):
                        break
                    same = got == la
                    a[same], b[~same] = mid[same], mid[~same]
                    points = np.concatenate([points, mid])
                    labels = np.concatenate([labels, got])
                    if params.mix_natural and not session.exhausted:
                        extra = int(round(params.mix_natural / (1 - params.mix_natural) * len(mid)))
                        natural = draw_inputs("attacker", extra, resources, rng)
                        got = session.ask(natural).argmax(axis=1)
                        points = np.concatenate([points, natural[: len(got)]])
                        labels = np.concatenate([labels, got])
        return finish(
            self.kind, session, timer, params.training, seed=seed,
            details={"source": params.source, "queries_natural": params.mix_natural},
        )  # fmt: skip


register(
    "attacks",
    "random-queries",
    RandomQueriesParams,
    "Tramèr et al.: retrain on uniform or Gaussian random queries",
)(PoolSampling)
register(
    "attacks",
    "line-search",
    LineSearchParams,
    "Tramèr et al.: retraining with line-search queries near the boundaries",
)(LineSearchRetraining)
register(
    "attacks",
    "copycat",
    CopycatParams,
    "CopycatCNN: natural images labelled with the victim's top-1",
)(Copycat)
