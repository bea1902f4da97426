"""Watermark costs: embedding relative to plain training, extraction, verification.

``extra_info['ratio_to_plain_training']`` holds the embedding overhead measured in the
same run (one plain epoch is timed right before).
"""

import time

from vtrust.models import TrainConfig, build_model, fit
from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key
from vtrust.watermark.static import StaticWatermark, new_static_key


def _plain_epoch_seconds(digits):
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    start = time.perf_counter()
    fit(model, digits.victim, TrainConfig(epochs=1))
    return time.perf_counter() - start


def test_static_embedding_epoch(benchmark, digits):
    plain = _plain_epoch_seconds(digits)
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    wm = StaticWatermark(new_static_key(model, bits=256, seed=1))
    benchmark.pedantic(
        lambda: wm.embed(model, digits.victim, TrainConfig(epochs=1)), rounds=3, iterations=1
    )
    if benchmark.stats:
        benchmark.extra_info["ratio_to_plain_training"] = benchmark.stats["mean"] / plain


def test_dynamic_embedding_epoch(benchmark, digits):
    plain = _plain_epoch_seconds(digits)
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    wm = DynamicWatermark(new_dynamic_key(digits, triggers=100, seed=1))
    benchmark.pedantic(
        lambda: wm.embed(model, digits.victim, TrainConfig(epochs=1)), rounds=3, iterations=1
    )
    if benchmark.stats:
        benchmark.extra_info["ratio_to_plain_training"] = benchmark.stats["mean"] / plain


def test_static_extraction_and_verification(benchmark, mlp_victim):
    wm = StaticWatermark(new_static_key(mlp_victim, bits=256, seed=1))
    result = benchmark(wm.verify, mlp_victim)
    assert result.total == 256


def test_dynamic_verification(benchmark, mlp_victim, digits):
    wm = DynamicWatermark(new_dynamic_key(digits, triggers=100, seed=1))
    result = benchmark(wm.verify, mlp_victim, digits.test.x)
    assert result.total == 100
