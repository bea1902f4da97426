"""Non-adaptive extraction: draw queries from a source, label them with the oracle, train.

Three attacks of the literature are this one procedure with different sources and labels:

* **random queries** (Tramèr et al. 2016, "retraining"): uniform or Gaussian inputs;
* **Knockoff Nets, random strategy** (Orekondy et al. 2019): natural images or the
  attacker's own in-distribution data, trained on the returned probabilities;
* **CopycatCNN** (Correia-Silva et al. 2018): non-problem-domain (natural) images labelled
  with the victim's top-1 class only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vtrust.attacks.base import AttackerResources, finish
from vtrust.attacks.extraction.common import ExtractionAttack, ExtractionParams, Source, draw_inputs
from vtrust.catalog import register

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


register(
    "attacks",
    "random-queries",
    RandomQueriesParams,
    "Tramèr et al.: retrain on uniform or Gaussian random queries",
)(PoolSampling)
register(
    "attacks",
    "copycat",
    CopycatParams,
    "CopycatCNN: natural images labelled with the victim's top-1",
)(Copycat)
