"""Costs of the weight-side protections, each ratio measured within one run.

* Unscrambling, per layer of the digits CNN and of an MNIST-sized CNN (goal ≤ 5 ms per
  layer): ``extra_info['ms_per_layer']`` (deriving the keyed permutations included).
* Sealed model files: decrypt-on-load against a plain load of the same model file:
  ``extra_info['ratio_to_plain_load']``.
* Freivalds' check of an outsourced 512×512 (and 1024×1024) product mod p against
  recomputing it (exact float64 BLAS), both on one thread as inside the enclave:
  ``extra_info['ratio_to_recompute']`` (goal ≤ 1/20); ``ratio_to_recompute_all_cores``
  lets the recomputation use every core.
* Enclave boundary: one ecall with a 64-example digits batch, all layers inside.
"""

import numpy as np
import pytest
import torch

from vtrust import keystream
from vtrust.enclave import modp
from vtrust.enclave.freivalds import FreivaldsCheck
from vtrust.enclave.runtime import one_thread
from vtrust.enclave.split import SplitModel, SplitSpec
from vtrust.keying import ProtectionKey
from vtrust.models import build_model, load_model, save_model
from vtrust.protect.scramble import TensorPermutation, scramble, unscramble
from vtrust.protect.seal import load_sealed_model, seal_bytes
from vtrust.timing import median_seconds

KEY = ProtectionKey.generate(seed=0)
SALT = bytes(16)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)], ids=["digits", "mnist"])
def test_unscramble_per_layer(benchmark, shape):
    model = build_model("cnn", shape, 10, seed=0)
    scrambled = scramble(model, KEY, SALT)
    benchmark(unscramble, scrambled, KEY, SALT)
    tensors = {n: t for n, t in scrambled.state_dict().items() if t.ndim > 1}
    per_layer = {}
    for name, tensor in tensors.items():
        values = tensor.numpy()
        per_layer[name] = 1000 * median_seconds(
            lambda n=name, v=values: TensorPermutation.derive(KEY, n, v.shape, SALT).invert(v)
        )
    if benchmark.stats:
        benchmark.extra_info["ms_per_layer"] = per_layer
        benchmark.extra_info["ms_per_weight_layer_mean"] = (
            1000 * benchmark.stats["mean"] / len(tensors)
        )
    assert max(per_layer.values()) < 1000


def test_sealed_load_against_plain_load(benchmark, tmp_path):
    model = build_model("cnn", (1, 28, 28), 10, seed=0)
    save_model(tmp_path / "m.vtm", model)
    (tmp_path / "m.sealed").write_bytes(seal_bytes((tmp_path / "m.vtm").read_bytes(), KEY))
    plain = median_seconds(lambda: load_model(tmp_path / "m.vtm"))
    loaded = benchmark(load_sealed_model, tmp_path / "m.sealed", KEY)
    sealed = median_seconds(lambda: load_sealed_model(tmp_path / "m.sealed", KEY))
    if benchmark.stats:
        benchmark.extra_info.update(
            plain_load_ms=plain * 1000, sealed_load_ms=sealed * 1000,
            ratio_to_plain_load=sealed / plain, file_kb=(tmp_path / "m.vtm").stat().st_size / 1024,
        )  # fmt: skip
    assert loaded.sha256


@pytest.mark.parametrize("n", [512, 1024])
def test_freivalds_against_recomputing(benchmark, n):
    rng = np.random.default_rng(0)
    stream = keystream.from_seed(0)  # test data, not secrets
    x, w = modp.random(stream, (n, n)), rng.integers(-127, 128, (n, n))
    check = FreivaldsCheck.prepare(w, stream)
    y = modp.matmul(x, w)
    assert benchmark(check.check, x, y)
    prepared = modp.Weights(w)  # the recomputing side's best: weights converted once
    recompute_all_cores = median_seconds(lambda: modp.matmul(x, prepared), repeats=5)
    with one_thread():  # inside the enclave, where the product would be recomputed
        recompute = median_seconds(lambda: modp.matmul(x, prepared), repeats=5)
        checking = median_seconds(lambda: check.check(x, y), repeats=5)
    if benchmark.stats:
        benchmark.extra_info.update(
            recompute_ms=recompute * 1000, recompute_all_cores_ms=recompute_all_cores * 1000,
            check_ms=checking * 1000, ratio_to_recompute=checking / recompute,
            ratio_to_recompute_all_cores=checking / recompute_all_cores,
            repetitions=check.repetitions,
        )  # fmt: skip


def test_enclave_call_all_inside(benchmark):
    model = build_model("cnn", (1, 8, 8), 10, seed=0)
    split = SplitModel(model, SplitSpec("all"))
    x = torch.rand(64, 1, 8, 8)
    out = benchmark(split.forward, x)
    assert out.shape == (64, 10)
