"""Ownership verification of one suspect: every kind of evidence on a digits MLP.

``extra_info``: seconds per kind (answer watermark over 1,000 records, static key,
dataset inference with 100 points per side) and in total (goal ≤ 1 s); the verdict's
combination itself is negligible.
"""

import time

import numpy as np

from vtrust.defenses.answer_marks import AnswerMarkParams, AnswerWatermark
from vtrust.models.recipes import train_model
from vtrust.oracle import Oracle
from vtrust.ownership.evidence import OwnerSide
from vtrust.ownership.verdict import combine
from vtrust.watermark.static import new_static_key


class _Context:
    n_classes = 10
    seed = None


def test_verify_one_suspect(benchmark, digits, mlp_victim):
    defense = AnswerWatermark(AnswerMarkParams(rate=0.5))
    defense.bind(_Context())
    oracle = Oracle(mlp_victim, digits.input_shape, defenses=[defense])
    rng = np.random.default_rng(0)
    while len(defense.store) < 1000:
        oracle.query(rng.random((256, *digits.input_shape), dtype=np.float32), "filler")
    key = new_static_key(mlp_victim, bits=256, seed=1)
    side = OwnerSide.with_dataset_inference(
        mlp_victim, digits, key=key, records=list(defense.store)
    )
    suspect = train_model(digits, "mlp", seed=7).model

    def verify():
        return combine(side.evidence(suspect), 1e-6)

    benchmark.pedantic(verify, rounds=1, iterations=1)
    if benchmark.enabled:
        per_kind = {}
        for kind in side.available():
            started = time.perf_counter()
            side.evidence(suspect, [kind])
            per_kind[f"{kind}_s"] = time.perf_counter() - started
        started = time.perf_counter()
        verify()
        benchmark.extra_info.update(per_kind, total_s=time.perf_counter() - started)
