"""Throughput of the foundation: oracle queries per second and one training epoch.

Run with ``make bench``; the default test run executes each benchmark once as a smoke test.
"""

import pytest

from vtrust.models import TrainConfig, build_model, fit
from vtrust.oracle import Oracle


@pytest.mark.parametrize("batch", [1, 256])
def test_oracle_query_throughput(benchmark, small_mlp, digits, batch):
    oracle = Oracle(small_mlp, digits.input_shape, batch_size=256)
    x = digits.test.x[:256]

    def answer_256():
        for start in range(0, 256, batch):
            oracle.query(x[start : start + batch])

    benchmark(answer_256)
    if benchmark.stats:
        benchmark.extra_info["queries_per_s"] = 256 / benchmark.stats["mean"]


@pytest.mark.parametrize("arch", ["mlp", "cnn", "quad"])
def test_training_epoch(benchmark, digits, arch):
    def one_epoch():
        model = build_model(arch, digits.input_shape, 10, seed=0)
        fit(model, digits.victim, TrainConfig(epochs=1))

    benchmark(one_epoch)
