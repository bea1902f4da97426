"""Thieves that have read vtrust's detectors: pool selection that the defender's density
model would accept, and a refusal-aware thief that learns which queries get it refused.

* ``density-knockoff``: Knockoff over the natural-image pool, keeping only the images its
  *own* density model finds most typical. The attacker fits a probabilistic PCA (the
  shift detector's model family) on ``density_samples`` in-distribution images it holds
  and queries the ``budget`` pool images of highest log-likelihood, in random order.
* ``refusal-aware``: Knockoff over the pool under a fresh client id after every refusal
  (a refusal names the id, not the query), learning from refusals which queries to
  avoid — rejection sampling in the spirit of OARS (Feng et al.). The queries an id sent
  before it was refused are labelled *suspect*, those of ids never refused *safe*; a
  logistic regression on the attacker's own density score and the image pixels is
  refitted after every refusal, and each later candidate is kept with probability
  1 − P(suspect).

Both train the thief like Knockoff's random strategy (on probabilities, or labels with
``labels_only``). The sybil rotation and fresh-id tactics of any attack are
``rotate_every`` / ``on_refusal`` (:class:`~vtrust.attacks.base.IdTactics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from vtrust.attacks.base import AttackerResources, finish
from vtrust.attacks.extraction.common import ExtractionAttack, PoolParams, draw_inputs, draw_pool
from vtrust.catalog import register
from vtrust.errors import InputError

QUERY_BATCH = 20  # small batches: a refusal wastes little, and the filter learns sooner


@dataclass(frozen=True)
class DensityParams(PoolParams):
    """Attributes:
    density_samples: in-distribution images the attacker fits its density on.
    components: principal components of its PPCA.
    (pool: ``pool_size`` natural images; the ``budget`` most typical are queried)
    """

    pool_size: int = 20000
    density_samples: int = 50
    components: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.density_samples < 3 or self.components < 1:
            raise InputError("density_samples ≥ 3 and components ≥ 1 required")


class AttackerDensity:
    """The attacker's own PPCA density on a few in-distribution images."""

    def __init__(self, samples: np.ndarray, components: int, seed: int) -> None:
        flat = samples.reshape(len(samples), -1).astype(np.float64)
        k = max(1, min(components, len(flat) - 1, flat.shape[1] - 1))
        self.model = PCA(n_components=k, random_state=seed).fit(flat)

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(x.reshape(len(x), -1).astype(np.float64))


def _density(p: DensityParams, resources: AttackerResources, rng) -> AttackerDensity:
    samples = draw_inputs("attacker", p.density_samples, resources, rng)
    return AttackerDensity(samples, p.components, int(rng.integers(2**31)))


class DensityKnockoff(ExtractionAttack):
    kind = "density-knockoff"

    def __init__(self, params: DensityParams = DensityParams()) -> None:
        super().__init__(params)

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: DensityParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("select"):
            density = _density(p, resources, rng)
            pool = draw_pool(p, resources, rng)
            scores = density.score(pool)
            chosen = np.argsort(-scores)[: session.budget]
            chosen = chosen[rng.permutation(len(chosen))]
        with timer.stage("query"):
            for start in range(0, len(chosen), QUERY_BATCH):
                if len(session.ask(pool[chosen[start : start + QUERY_BATCH]])) == 0:
                    break
        details = {"pool": len(pool), "selected_score_min": float(scores[chosen].min())}
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)


@dataclass(frozen=True)
class RefusalAwareParams(DensityParams):
    """Attributes:
    min_suspect: refusals' queries needed before the filter is used.
    (``on_refusal`` is always ``new-id``)
    """

    pool_size: int = 20000
    min_suspect: int = 4
    on_refusal: str = "new-id"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_refusal != "new-id":
            raise InputError("a refusal-aware thief carries on under a new id after a refusal")
        if self.min_suspect < 1:
            raise InputError("min_suspect must be positive")


class RefusalAware(ExtractionAttack):
    kind = "refusal-aware"

    def __init__(self, params: RefusalAwareParams = RefusalAwareParams()) -> None:
        super().__init__(params)

    def run(self, resources: AttackerResources, *, budget=None, seed=0):
        p: RefusalAwareParams = self.params  # type: ignore[assignment]
        session, timer, rng = self.start(resources, budget, seed)
        with timer.stage("pool"):
            density = _density(p, resources, rng)
            pool = draw_pool(p, resources, rng)
            features = np.hstack([density.score(pool)[:, None] / pool[0].size,
                                  pool.reshape(len(pool), -1)])  # fmt: skip
        order = list(rng.permutation(len(pool)))
        risk = np.zeros(len(pool))  # P(suspect) of every pool image, from the filter
        sent: list[int] = []  # pool index of every answered query, in order
        refusals_seen, kept, rejected = 0, 0, 0
        while not session.exhausted and order:
            batch = []
            while order and len(batch) < QUERY_BATCH:
                i = order.pop()
                if rng.random() < 1.0 - risk[i]:
                    batch.append(i)
                    kept += 1
                else:
                    rejected += 1
            if not batch:
                break
            with timer.stage("query"):
                got = session.ask(pool[batch])
            sent.extend(batch[: len(got)])
            if len(got) == 0:
                break
            if len(session.refused_ids) > refusals_seen:
                refusals_seen = len(session.refused_ids)
                refused = {cid for cid, _ in session.refused_ids}
                who = session.row_clients
                suspect = [i for i, cid in zip(sent, who, strict=True) if cid in refused]
                safe = [i for i, cid in zip(sent, who, strict=True) if cid not in refused]
                if len(suspect) >= p.min_suspect and safe:
                    with timer.stage("learn"):
                        risk = self._fit(features, suspect, safe, seed).predict_proba(features)[
                            :, 1
                        ]
        details = {"kept": kept, "rejected": rejected, "ids": len(session.ids),
                   "refused_ids": len(session.refused_ids)}  # fmt: skip
        return finish(self.kind, session, timer, p.training, seed=seed, details=details)

    @staticmethod
    def _fit(features, suspect: list[int], safe: list[int], seed: int) -> LogisticRegression:
        x = features[suspect + safe]
        y = np.r_[np.ones(len(suspect)), np.zeros(len(safe))]
        return LogisticRegression(C=1.0, max_iter=200, random_state=seed).fit(x, y)


register(
    "attacks",
    "density-knockoff",
    DensityParams,
    "Knockoff keeping the pool images the attacker's own density finds typical",
)(  # fmt: skip
    DensityKnockoff
)
register(
    "attacks",
    "refusal-aware",
    RefusalAwareParams,
    "Knockoff that takes a new id after each refusal and learns what got it refused",
)(  # fmt: skip
    RefusalAware
)
