"""What the owner holds, and each kind of evidence it yields on a suspect.

:class:`OwnerSide` gathers the verifier's own material — never anything from the file
under test: a watermark key (static or trigger set), the answer-watermark log of its own
oracle, and its own model with its private training split for dataset inference. The
same object tests a suspect and every null model, so calibration and verification run
exactly the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vtrust.data import Splits
from vtrust.errors import InputError
from vtrust.ownership.answer_evidence import trace
from vtrust.ownership.dataset_inference import DatasetInference, WalkParams
from vtrust.ownership.mark_store import MarkRecord
from vtrust.ownership.verdict import KINDS, Evidence
from vtrust.targets.base import Target, as_target
from vtrust.watermark.keys import WatermarkKey

#: The blind walk for dataset inference: 5 directions per noise type, RMS step 0.05, at
#: most 60 steps (the ownership study's setting).
DEFAULT_WALK = WalkParams(directions=5, step=0.05, max_steps=60)


@dataclass
class OwnerSide:
    """The owner's material. Attributes:
    splits: the owner's data (victim split private; test split public).
    key: a watermark key (static or dynamic), or None.
    records: the answer-watermark log's records (empty: no answer watermark).
    inference: dataset inference fitted on the owner's model, or None.
    samples: points per side in the dataset-inference test.
    """

    splits: Splits
    key: WatermarkKey | None = None
    records: Sequence[MarkRecord] = ()
    inference: DatasetInference | None = None
    samples: int = 100
    _held_out: tuple | None = field(default=None, repr=False)

    @classmethod
    def with_dataset_inference(
        cls,
        owner_model,
        splits: Splits,
        *,
        samples: int = 100,
        walk: WalkParams = DEFAULT_WALK,
        **kw,
    ) -> OwnerSide:
        """Fit dataset inference on ``owner_model``: the first half of the private
        (victim) split and of the public (test) split fit the score; ``samples`` of each
        from the other halves test suspects."""
        private, public = _halves(splits, samples)
        inference = DatasetInference(owner_model, private[0], public[0], walk)
        side = cls(splits, inference=inference, samples=samples, **kw)
        side._held_out = (private[1], public[1])
        return side

    def available(self) -> tuple[str, ...]:
        """The kinds of evidence this owner can produce."""
        have = {"dawn": bool(self.records), "dataset-inference": self.inference is not None,
                "static": self.key is not None and self.key.static is not None,
                "trigger": self.key is not None and self.key.dynamic is not None}  # fmt: skip
        return tuple(k for k in KINDS if have[k])

    def evidence(
        self, suspect: Target | object, kinds: Sequence[str] | None = None
    ) -> list[Evidence]:
        """Each requested kind's test on ``suspect`` (default: every available kind);
        InputError for a kind this owner cannot produce, or static on a black box."""
        from vtrust.watermark.ownership import verify

        wanted = tuple(kinds) if kinds is not None else self.available()
        missing = [k for k in wanted if k not in self.available()]
        if missing:
            raise InputError(f"no material for evidence {', '.join(missing)} "
                             f"(available: {', '.join(self.available()) or 'none'})")  # fmt: skip
        target = as_target(suspect, self.splits.input_shape)
        out = []
        for kind in wanted:
            if kind == "dawn":
                out.append(dawn_evidence(target, self.records, self.splits.n_classes))
            elif kind in ("static", "trigger"):
                result = verify(target, self.key, self.splits, fpr=1.0)
                counts = {"matches": result.matches, "total": result.total}
                out.append(Evidence(kind, result.p_value, counts))
            else:
                private, public = self._held_out
                result = self.inference.test(target, private, public)
                out.append(Evidence("dataset-inference", result.p_value, result.to_json()))
        return out


def dawn_evidence(suspect, records: Sequence[MarkRecord], n_classes: int) -> Evidence:
    """The answer watermark's p-value: the better of the test over every record (a
    sybil thief spread over many ids) and of the best client's own test times the
    number of clients, doubled (Bonferroni over the two and over the clients)."""
    overall, ranked = trace(suspect, records, n_classes)
    best = ranked[0].p_value * len(ranked) if ranked else 1.0
    p_value = min(1.0, 2.0 * min(overall.p_value, best))
    ranking = [[e.clients[0], e.p_value, e.agreements, e.informative] for e in ranked[:5]]
    detail = {"agreements": overall.agreements, "informative": overall.informative,
              "marks": overall.marks, "clients": len(ranked),
              "ranked_clients": ranking}  # fmt: skip
    return Evidence("dawn", p_value, detail)


def _halves(splits: Splits, samples: int):
    """((fit, test), (fit, test)) of the private and public splits; InputError if either
    is too small for ``samples`` test points and as many fitting points."""
    private, public = splits.victim, splits.test
    if samples < 2 or len(private) < 2 * samples or len(public) < 2 * samples:
        raise InputError(f"dataset inference needs ≥ {2 * samples} private and public points "
                         f"(have {len(private)} and {len(public)})")  # fmt: skip
    p_fit = min(len(private) - samples, 400)
    u_fit = len(public) - samples
    pick = lambda d, a, b: (d.x[a:b], np.asarray(d.y[a:b]))  # noqa: E731
    return ((pick(private, 0, p_fit), pick(private, p_fit, p_fit + samples)),
            (pick(public, 0, u_fit), pick(public, u_fit, u_fit + samples)))  # fmt: skip
