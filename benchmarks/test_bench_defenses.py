"""Query-side defense costs.

* PRADA: cost per query with 1k, 10k and 100k queries stored in a client's growing sets
  (MNIST-sized 784-pixel queries, ten classes; each round feeds 10 queries, which
  includes one Shapiro–Wilk test): ``extra_info['ms_per_query']``.
* PRADA at 10k stored: the oracle's default (detectors on one thread,
  ``threads.small_work``) against the libraries' default pools, ABBA-interleaved in one
  run: ``extra_info['default_pools_over_one_thread']`` (the gain; large on a loaded
  machine).
* Shift detector: cost per query at batch 1.
* MAD: an oracle with MAD-argmax answering a batch of 256 against the undefended oracle,
  timed in the same run: ``extra_info['ratio_to_undefended']``.
* Answer watermark (DAWN): the same, ABBA-interleaved, for three victims of different
  cost.
"""

import time
from dataclasses import replace

import numpy as np
import pytest

from vtrust.data import Dataset
from vtrust.defenses.deployment import DefenseContext, Deployment, build_defense
from vtrust.defenses.prada import Prada, PradaParams, PradaState, _ClassSet
from vtrust.models import build_model

DIM = 784


def filled_state(stored: int, seed: int = 0) -> PradaState:
    rng = np.random.default_rng(seed)
    state = PradaState()
    per_class = stored // 10
    for c in range(10):
        s = state.sets[c] = _ClassSet(DIM)
        pts = rng.random((per_class, DIM), dtype=np.float32)
        s.admit(pts, (pts.astype(np.float64) ** 2).sum(axis=1), [])
        s.threshold = 1.0
    state.stream_d.extend(rng.normal(10.0, 1.0, stored))
    state.stream_c.extend(np.arange(stored) % 10)
    state.stream_q.extend(np.arange(stored))
    state.queries = stored
    return state


@pytest.mark.parametrize("stored", [1_000, 10_000, 100_000])
def test_prada_cost_per_query(benchmark, stored):
    det = Prada(PradaParams(delta=1e-9, test_every=10))  # tests run, never alarm
    state = filled_state(stored)
    rng = np.random.default_rng(1)
    x = rng.random((10, 1, 28, 28), dtype=np.float32)
    probs = np.eye(10)[rng.integers(0, 10, 10)]
    benchmark(det.update, state, x, probs)
    if benchmark.stats:
        benchmark.extra_info["ms_per_query"] = benchmark.stats["mean"] * 1000 / len(x)
    assert state.last_w is not None


def test_prada_on_one_thread_against_the_default_pools(benchmark):
    import torch

    from vtrust.threads import small_work
    from vtrust.timing import interleaved

    det = Prada(PradaParams(delta=1e-9, test_every=10))
    state = filled_state(10_000)
    rng = np.random.default_rng(1)
    x = rng.random((10, 1, 28, 28), dtype=np.float32)
    probs = np.eye(10)[rng.integers(0, 10, 10)]

    def one_thread():
        with small_work():
            det.update(state, x, probs)

    benchmark.pedantic(one_thread, rounds=1, iterations=1)
    if benchmark.enabled:
        timed = interleaved(one_thread, lambda: det.update(state, x, probs), rounds=40)
        benchmark.extra_info.update(
            one_thread_ms_per_query=timed["a_s"] * 1000 / len(x),
            default_pools_ms_per_query=timed["b_s"] * 1000 / len(x),
            default_pools_over_one_thread=timed["ratio"],
            torch_threads=torch.get_num_threads(),
        )


@pytest.fixture(scope="module")
def mnist_shaped():
    rng = np.random.default_rng(0)
    data = Dataset(
        rng.random((1000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 1000), 10, "noise"
    )
    return build_model("mlp", (1, 28, 28), 10, seed=0), data


def test_shift_cost_per_query(benchmark, mnist_shaped):
    model, data = mnist_shaped
    from vtrust.catalog import load_entry

    det = build_defense(load_entry("defenses", "shift"), DefenseContext(model, data))
    x = data.x[:1]
    probs = np.full((1, 10), 0.1)
    benchmark(det.observe, "client", x, probs)


@pytest.mark.parametrize("shape", ["digits", "mnist"])
def test_mad_batch_latency(benchmark, shape, digits, mlp_victim, mnist_shaped):
    model, data = (mlp_victim, digits.victim) if shape == "digits" else mnist_shaped
    x = data.x[:256]
    plain = Deployment().oracle(model, data)
    mad = Deployment.of(["mad-argmax"]).oracle(model, data)
    for oracle in (plain, mad):
        oracle.query(x)  # warm up
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        plain.query(x)
    plain_seconds = (time.perf_counter() - started) / rounds
    benchmark(mad.query, x)
    if benchmark.stats:
        benchmark.extra_info["undefended_ms"] = plain_seconds * 1000
        benchmark.extra_info["ratio_to_undefended"] = benchmark.stats["mean"] / plain_seconds


@pytest.mark.parametrize("shape", ["digits", "mnist", "mnist-cnn"])
def test_answer_watermark_batch_latency(benchmark, shape, digits, mlp_victim, mnist_shaped):
    """The DAWN oracle answering 256 queries against the undefended oracle, ABBA in one
    run (``extra_info['ratio_to_undefended']``; goal ≤ 1.1), with 1,000 planted answers
    already in its store (≈ 200k queries served at the default 0.5 %) to look near.
    Victims: the digits MLP, an MLP on MNIST-shaped input and the zoo CNN on it (the
    overhead is about fixed per query, so the ratio depends on the model's cost)."""
    from vtrust.timing import interleaved

    if shape == "digits":
        model, data = mlp_victim, digits.victim
    else:
        model, data = mnist_shaped
        if shape == "mnist-cnn":
            model = build_model("cnn", (1, 28, 28), 10, seed=0)
    x = data.x[:256]
    plain = Deployment().oracle(model, data)
    marked = Deployment.of(["dawn"]).oracle(model, data)
    dawn = marked.defenses[-1]
    default = dawn.params
    dawn.params = replace(default, rate=0.5)  # plant 1,000 answers quickly, then serve at 0.5 %
    rng = np.random.default_rng(3)
    while len(dawn.store) < 1000:
        marked.query(rng.random((256, *x.shape[1:]), dtype=np.float32), "filler")
    dawn.params = default
    benchmark.pedantic(marked.query, args=(x,), rounds=1, iterations=1)
    if benchmark.enabled:
        timed = interleaved(lambda: plain.query(x), lambda: marked.query(x), rounds=40)
        benchmark.extra_info.update(
            undefended_ms=timed["a_s"] * 1000,
            answer_watermark_ms=timed["b_s"] * 1000,
            ratio_to_undefended=timed["ratio"],
            planted=len(dawn.store),
        )


@pytest.mark.parametrize("shape", ["digits", "mnist-cnn"])
@pytest.mark.parametrize("traffic", ["in-distribution", "natural"])
def test_adaptive_misinformation_batch_latency(benchmark, shape, traffic, digits, mlp_victim):
    """The Adaptive Misinformation oracle answering 256 queries against the undefended
    oracle, ABBA in one run (``extra_info['ratio_to_undefended']``; goal ≤ 1.5): the
    digits MLP, and the zoo CNN on MNIST-shaped data; a benign batch (no misinformation
    model runs) and a natural-image batch (it runs on every row)."""
    from vtrust.data.natural import natural_image_pool
    from vtrust.timing import interleaved

    if shape == "digits":
        model, data = mlp_victim, digits.victim
    else:  # the zoo CNN with MNIST-shaped reference data (digits upscaled: a fast fit)
        up = np.repeat(np.repeat(digits.victim.x, 4, axis=2), 4, axis=3)[:, :, 2:30, 2:30]
        data = Dataset(np.ascontiguousarray(up), digits.victim.y, 10, "digits-28")
        model = build_model("cnn", (1, 28, 28), 10, seed=0)
    x = data.x[:256] if traffic == "in-distribution" else natural_image_pool(
        256, data.input_shape, seed=0)  # fmt: skip
    plain = Deployment().oracle(model, data)
    misinformed = Deployment.of(["misinformation"]).oracle(model, data, seed=0)
    benchmark.pedantic(misinformed.query, args=(x,), rounds=1, iterations=1)
    if benchmark.enabled:
        timed = interleaved(lambda: plain.query(x), lambda: misinformed.query(x), rounds=40)
        am = misinformed.defenses[0]
        benchmark.extra_info.update(
            undefended_ms=timed["a_s"] * 1000, misinformation_ms=timed["b_s"] * 1000,
            ratio_to_undefended=timed["ratio"],
            misinformed_rows=int((am.weights(x, plain.query(x)) > 0.5).sum()),
        )  # fmt: skip


def test_extraction_warning_batch_latency(benchmark, digits, mlp_victim):
    """The extraction warning (stealing progress per client) on a 256-query batch of the
    digits MLP against the undefended oracle, ABBA in one run
    (``extra_info['ratio_to_undefended']``): a PCA projection, a tree lookup and one pass
    over the batch's leaves per call; every call from a fresh client, so none is already
    alarmed (an alarmed client skips the update)."""
    import itertools

    from vtrust.timing import interleaved

    x = digits.test.x[:256]
    ids = (f"c{i}" for i in itertools.count())
    plain = Deployment().oracle(mlp_victim, digits.victim)
    warned = Deployment.of(["extraction-warning"]).oracle(mlp_victim, digits.victim, seed=0)
    benchmark.pedantic(warned.query, args=(x,), kwargs={"client_id": "c"}, rounds=1,
                       iterations=1)  # fmt: skip
    if benchmark.enabled:
        timed = interleaved(lambda: plain.query(x),
                            lambda: warned.query(x, client_id=next(ids)), rounds=40)  # fmt: skip
        benchmark.extra_info.update(undefended_ms=timed["a_s"] * 1000,
                                    warning_ms=timed["b_s"] * 1000,
                                    ratio_to_undefended=timed["ratio"])  # fmt: skip
