"""Verifiable-inference costs, as ratios measured in one run (``extra_info``):

* field forward pass / float32 torch forward pass of the same shapes;
* extra prover time (a Fiat–Shamir proof from the forward pass's layer values) / field
  forward;
* verifier time / field forward pass.

The shape here is mid-sized (batch 64, 512-512-512-16) so the default test run stays
quick; ``experiments/proofs.py`` measures the TIMIT shape of the SafetyNets paper.
"""

import numpy as np
import pytest
import torch

from vtrust.proofs import field as F
from vtrust.proofs.costs import measure, random_circuit, torch_twin
from vtrust.proofs.protocol import (
    PROTOCOLS,
    PreparedVerifier,
    prove_noninteractive,
    verify_noninteractive,
)


@pytest.fixture(scope="module")
def setting():
    circuit = random_circuit([512, 512, 512, 16], 64, seed=0)
    x = circuit.pad_inputs(F.elements(np.random.default_rng(0).integers(0, 16, (64, 512))))
    return circuit, x


def test_field_forward(benchmark, setting):
    circuit, x = setting
    twin, xt = torch_twin(circuit), torch.from_numpy(F.signed(x).astype(np.float32))
    costs = measure(circuit, x, repeats=2)
    values = benchmark(circuit.forward, x)
    assert values[-1].shape == (64, 16)
    with torch.no_grad():
        twin(xt)
    if benchmark.stats:
        benchmark.extra_info.update(costs.to_json())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_extra_prover(benchmark, setting, protocol):
    circuit, x = setting
    values = circuit.forward(x)
    outputs, messages = benchmark(prove_noninteractive, circuit, x, values, protocol=protocol)
    assert len(messages) > 0 and outputs.shape == (64, 16)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_verify(benchmark, setting, protocol):
    circuit, x = setting
    outputs, messages = prove_noninteractive(circuit, x, protocol=protocol)
    prepared = PreparedVerifier.prepare(circuit)
    result = benchmark(verify_noninteractive, prepared, x, outputs, messages, protocol=protocol)
    assert (result == outputs).all()


def test_field_multiplication_throughput(benchmark):
    a = np.random.default_rng(0).integers(0, F.P, 1 << 20, dtype=np.uint64)
    benchmark(F.mul, a, a)
    if benchmark.stats:
        benchmark.extra_info["mult_per_second"] = len(a) / benchmark.stats["mean"]
