"""Watermark costs: embedding relative to plain training, extraction, verification.

``extra_info['ratio_to_plain_epoch']`` (static, entangled) holds the embedding overhead
per epoch, interleaved with plain epochs in the same run; ``ratio_to_plain_training``
(dynamic) the same against one plain epoch timed right before.
"""

import time

import pytest

from vtrust.models import TrainConfig, build_model, fit
from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key
from vtrust.watermark.static import EMBED_EVERY, StaticWatermark, layer_weight, new_static_key


def _plain_epoch_seconds(digits):
    model = build_model("cnn", digits.input_shape, 10, seed=0)
    start = time.perf_counter()
    fit(model, digits.victim, TrainConfig(epochs=1))
    return time.perf_counter() - start


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_static_embedding_epoch(benchmark, digits, arch):
    """One static-watermark training epoch (training with the regulariser as ``embed``
    runs it) against one plain epoch of the same model, ABBA-interleaved
    (``ratio_to_plain_epoch``; goal ≤ 1.2). Costs paid once per ``embed`` call, not per
    epoch, are reported beside it: the key's projection (``projection_s``, once per key)
    and the settle step that ends an embedding (``settle_s``: after a 1-epoch embedding
    of a fresh model, the case with most to settle), and the whole 1-epoch ``embed``
    call against a plain epoch (``one_epoch_embed_ratio``)."""
    from vtrust.timing import interleaved

    model = build_model(arch, digits.input_shape, 10, seed=0)
    wm = StaticWatermark(new_static_key(model, bits=256, seed=1))
    weight = layer_weight(model, wm.part.layer)
    started = time.perf_counter()
    wm.projection(weight.numel())
    projection_s = time.perf_counter() - started
    config = TrainConfig(epochs=1)
    penalty = wm.penalty(EMBED_EVERY)

    def marked_epoch():
        fit(model, digits.victim, config, penalties=[penalty])

    _epoch_against_plain(benchmark, model, marked_epoch, digits, config, "static", 15)
    if benchmark.enabled:
        fresh = build_model(arch, digits.input_shape, 10, seed=1)
        fit(fresh, digits.victim, config, penalties=[wm.penalty(EMBED_EVERY)])
        started = time.perf_counter()
        wm._settle(layer_weight(fresh, wm.part.layer))
        settle_s = time.perf_counter() - started
        whole = interleaved(lambda: fit(model, digits.victim, config),
                            lambda: wm.embed(model, digits.victim, config), rounds=7)  # fmt: skip
        benchmark.extra_info.update(projection_s=projection_s, settle_s=settle_s,
                                    one_epoch_embed_ratio=whole["ratio"])  # fmt: skip


def _epoch_against_plain(benchmark, model, marked, digits, config, kind, rounds):
    """One ``marked()`` epoch once (the suite's smoke run) and, when benchmarking,
    ABBA-interleaved with plain epochs of the same model: ``<kind>_epoch_s``, ratio."""
    from vtrust.timing import interleaved

    def plain():
        fit(model, digits.victim, config)

    benchmark.pedantic(marked, rounds=1, iterations=1)
    if benchmark.enabled:
        timed = interleaved(plain, marked, rounds=rounds)
        benchmark.extra_info.update({"plain_epoch_s": timed["a_s"], f"{kind}_epoch_s": timed["b_s"],
                                     "ratio_to_plain_epoch": timed["ratio"]})  # fmt: skip


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


def test_entangled_embedding_epoch(benchmark, digits):
    """One EWE embedding epoch (a watermark batch with the SNNL of three layers after
    every second clean batch) against one plain epoch, ABBA-interleaved
    (``ratio_to_plain_epoch``)."""

    model = build_model("cnn", digits.input_shape, 10, seed=0)
    wm = DynamicWatermark(new_dynamic_key(digits, style="entangled", triggers=60, seed=1))
    config = TrainConfig(epochs=1, cosine=False)

    def marked_epoch():
        wm.embed(model, digits.victim, config)

    _epoch_against_plain(benchmark, model, marked_epoch, digits, config, "entangled", 7)
