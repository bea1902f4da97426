"""What vtrust's oracle adds to a model runtime's own batched inference.

At batch 256, an MNIST-sized CNN exported to ONNX is answered by onnxruntime alone
(``session.run``) and by an undefended vtrust oracle over the same session (input checks,
the input spec, probabilities, client accounting); likewise the int8 LiteRT fixture
(``interpreter.invoke`` on pre-quantised input against the oracle, which also quantises
and dequantises). Runs alternate A/B in one process; ``extra_info['ratio']`` is the
median of per-round ratios (goal ≤ 1.10), with the median milliseconds of each side.
"""

import statistics
import time

import numpy as np
import pytest
import torch

from vtrust.models import build_model
from vtrust.oracle import Oracle
from vtrust.targets import load_target

BATCH = 256
TFLITE = "tests/fixtures/digits_int8.tflite"


def interleaved(a, b, rounds: int = 30) -> dict[str, float]:
    """Median milliseconds of ``a`` and ``b`` timed alternately, and the median ratio b/a."""
    a(), b()  # warm up
    ta, tb, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a()
        mid = time.perf_counter()
        b()
        end = time.perf_counter()
        ta.append(mid - start)
        tb.append(end - mid)
        ratios.append((end - mid) / (mid - start))
    return {"runtime_ms": statistics.median(ta) * 1e3, "oracle_ms": statistics.median(tb) * 1e3,
            "ratio": statistics.median(ratios)}  # fmt: skip


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    path = tmp_path_factory.mktemp("bench") / "cnn.onnx"
    model = build_model("cnn", (1, 28, 28), 10, seed=0).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return path


def test_oracle_over_onnxruntime(benchmark, onnx_cnn):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_cnn), providers=["CPUExecutionProvider"])
    oracle = Oracle(load_target(onnx_cnn))
    x = np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32)
    benchmark(oracle.query, x)
    if benchmark.enabled:
        benchmark.extra_info.update(
            interleaved(lambda: session.run(None, {"x": x}), lambda: oracle.query(x))
        )


def test_oracle_over_litert(benchmark):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=TFLITE, num_threads=1)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [BATCH, 8, 8, 1])
    interpreter.allocate_tensors()
    out_index = interpreter.get_output_details()[0]["index"]
    quantised = np.random.default_rng(0).integers(-128, 127, (BATCH, 8, 8, 1), dtype=np.int8)

    def runtime():
        interpreter.set_tensor(detail["index"], quantised)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    oracle = Oracle(load_target(TFLITE))
    x = np.random.default_rng(0).random((BATCH, 1, 8, 8), dtype=np.float32)
    benchmark(oracle.query, x)
    if benchmark.enabled:
        benchmark.extra_info.update(interleaved(runtime, lambda: oracle.query(x)))
