"""Int8 proofs: execute + prove with the network built inside the timed call (building
counted, kernels warm), and verify everything included, for LeNet-5 (goals: prove
≤ 0.1 s at batch 1, ≤ 0.8 s at batch 16; verify ≤ 50 ms), the CIFAR-shaped CNN
(execute + prove ≤ 2.5 s) and VGG11 (prove ≤ 8 s). ``extra_info`` holds the proof size
and the part of it in the clear; ``experiments/int8.py`` measures the ratios and memory.
"""

import numpy as np
import pytest

from vtrust.proofs.int8 import protocol as P
from vtrust.proofs.int8.network import Int8Network
from vtrust.proofs.int8.shapes import ARCHITECTURES, random_network

POINTS = [("lenet5", 1), ("lenet5", 16), ("cifar_cnn", 1), ("vgg11", 1)]


@pytest.fixture(scope="module", params=POINTS, ids=[f"{n}@{b}" for n, b in POINTS])
def setting(request):
    name, batch = request.param
    network = random_network(name, seed=0)
    x = np.random.default_rng(1).integers(0, 128, (batch, *ARCHITECTURES[name][1]))
    P.run_interactive(network, x[:1])  # warm kernels
    return network, x


def test_execute_and_prove(benchmark, setting):
    network, x = setting

    def build_execute_prove():
        built = Int8Network(network.input_shape, network.layers, network.names)
        return P.prove_noninteractive(built, x, built.forward(x))

    messages = benchmark(build_execute_prove)
    sizes = P.proof_size(messages)
    benchmark.extra_info.update(proof_kb=sizes["total"] / 1000, clear_kb=sizes["auxiliary"] / 1000)


def test_verify(benchmark, setting):
    network, x = setting
    messages = P.prove_noninteractive(network, x)
    verified = benchmark(P.verify_noninteractive, network, x, messages)
    assert (verified.outputs.reshape(len(x), -1) == network.predict(x)).all()


@pytest.fixture(scope="module")
def imported_mnist():
    """The MNIST-shaped .tflite fixture (two convolutions, two max-pools, two dense
    layers), imported exactly, at batch 1."""
    from pathlib import Path

    pytest.importorskip("ai_edge_litert.interpreter")
    from vtrust.proofs.int8.litert import import_tflite

    raw = (Path(__file__).parent.parent / "tests/fixtures/mnist_int8.tflite").read_bytes()
    network = import_tflite(raw).network
    x = np.random.default_rng(2).integers(0, 256, (1, *network.input_shape))
    P.run_interactive(network, x)  # warm kernels
    return raw, network, x


def test_import_tflite_execute_and_prove(benchmark, imported_mnist):
    """Import (flatbuffer → integer network), execute and prove, all inside the call."""
    from vtrust.proofs.int8.litert import import_tflite

    raw, _, x = imported_mnist

    def import_execute_prove():
        network = import_tflite(raw).network
        return P.prove_noninteractive(network, x, network.forward(x))

    messages = benchmark(import_execute_prove)
    benchmark.extra_info.update(proof_kb=P.proof_size(messages)["total"] / 1000)


def test_verify_imported_tflite(benchmark, imported_mnist):
    _, network, x = imported_mnist
    messages = P.prove_noninteractive(network, x)
    verified = benchmark(P.verify_noninteractive, network, x, messages)
    assert (verified.outputs.reshape(len(x), -1) == network.predict(x)).all()
