"""What vtrust's oracle adds to a model runtime's own batched inference
(:mod:`vtrust.evaluation.overhead`), at batch 256: an MNIST-sized CNN exported to ONNX
under onnxruntime, and the int8 LiteRT fixtures (8×8 digits and 28×28). The benchmark
times the oracle; with ``--benchmark-enable`` ``extra_info`` also holds the runtime
alone and the oracle timed alternately in the same run (``ratio``: goal ≤ 1.10).
"""

import numpy as np
import pytest
import torch

from vtrust.evaluation.overhead import oracle_overhead
from vtrust.models import build_model
from vtrust.oracle import Oracle
from vtrust.targets import load_target

BATCH = 256


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("bench") / "cnn.onnx"
    model = build_model("cnn", (1, 28, 28), 10, seed=0).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return path


def run(benchmark, target):
    x = np.random.default_rng(0).random((BATCH, *target.input_shape), dtype=np.float32)
    benchmark(Oracle(target).query, x)
    if benchmark.enabled:
        benchmark.extra_info.update(oracle_overhead(target, x))


def test_oracle_over_onnxruntime(benchmark, onnx_cnn):
    run(benchmark, load_target(onnx_cnn))


@pytest.mark.parametrize("fixture", ["digits_int8", "mnist_int8"])
def test_oracle_over_litert(benchmark, fixture):
    pytest.importorskip("ai_edge_litert")
    run(benchmark, load_target(f"tests/fixtures/{fixture}.tflite"))
