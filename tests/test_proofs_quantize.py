"""Compiling quadratic networks: the circuit computes what the network computes, the
bound analysis refuses wrap-around, and quantisation-aware fine-tuning keeps accuracy."""

import numpy as np
import pytest
import torch

from vtrust.catalog import load_entry
from vtrust.errors import CircuitError, InputError
from vtrust.models import accuracy, build_model
from vtrust.models.recipes import train_model
from vtrust.proofs import field as F
from vtrust.proofs.protocol import run_interactive
from vtrust.proofs.quantize import (
    QuantSpec,
    circuit_predictions,
    compile_network,
    finetune_quantized,
    quantize_inputs,
)


@pytest.fixture(scope="module")
def quad(digits):
    return train_model(digits, "quad", seed=0, epochs=20).model


def test_circuit_equals_the_integer_network(digits):
    """Compile a model whose weights already lie on the grid: the field forward pass must
    equal the float64 forward pass of the same integer network, exactly."""
    model = build_model("quad", digits.input_shape, 10, seed=1).double()
    spec = QuantSpec(3, 4)
    with torch.no_grad():
        for module in (model.layers.conv1, model.layers.fc1, model.layers.fc2):
            module.weight.copy_(torch.randint(-2, 3, module.weight.shape).double())
            module.weight[(0,) * module.weight.dim()] = 7.0  # the grid's scale is 1
            module.bias.zero_()
    compiled = compile_network(model, digits.input_shape, spec, 16)
    images = digits.test.x[:16]
    q = quantize_inputs(images, spec)
    values = compiled.circuit.forward(compiled.circuit.pad_inputs(F.elements(q)))
    got = F.signed(values[-1][:16, :10])
    with torch.no_grad():
        want = model(torch.from_numpy(q.reshape(images.shape).astype(np.float64))).numpy()
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_bound_analysis_refuses_bit_widths_that_could_wrap(quad, digits):
    with pytest.raises(CircuitError, match="p/2"):
        compile_network(quad, digits.input_shape, QuantSpec(8, 8), 16)
    compiled = compile_network(quad, digits.input_shape, QuantSpec(3, 4), 16)
    assert max(compiled.bound_bits) < 60


def test_quantisation_aware_finetuning_keeps_accuracy_and_proofs_verify(quad, digits):
    spec = load_entry("circuits", "quad-digits").params.spec
    tuned = finetune_quantized(quad, digits.victim, spec, epochs=5)
    compiled = compile_network(tuned, digits.input_shape, spec, 64)
    circuit_acc = (circuit_predictions(compiled, digits.test.x) == digits.test.y).mean()
    assert circuit_acc >= accuracy(quad, digits.test) - 0.01
    x = compiled.circuit.pad_inputs(F.elements(quantize_inputs(digits.test.x[:64], spec)))
    out = run_interactive(compiled.circuit, x, seed=0)
    assert (
        F.signed(out[:, :10]).argmax(1) == circuit_predictions(compiled, digits.test.x[:64])
    ).all()


def test_bad_inputs_and_layers(quad, digits):
    with pytest.raises(InputError):
        quantize_inputs(np.full((1, 1, 8, 8), 2.0), QuantSpec())
    with pytest.raises(CircuitError, match="no circuit form"):
        compile_network(build_model("mlp", digits.input_shape, 10), digits.input_shape,
                        QuantSpec(), 4)  # fmt: skip
    with pytest.raises(InputError):
        QuantSpec(input_bits=0)


def test_circuit_entries_compile_only_their_architecture(quad, digits):
    compiler = load_entry("circuits", "quad-digits").build()
    assert compiler.compile(quad, digits.input_shape).circuit.batch == 64
    with pytest.raises(CircuitError, match="for 'quad' models"):
        compiler.compile(build_model("mlp", digits.input_shape, 10), digits.input_shape)


@pytest.mark.mnist
def test_a_quadratic_mnist_network_proves_and_verifies(mnist_dir):
    from vtrust.data import load_dataset
    from vtrust.proofs.protocol import PreparedVerifier, prove_noninteractive, verify_noninteractive

    splits = load_dataset(f"idx:{mnist_dir}", seed=0)
    model = train_model(splits, "quad", seed=0, epochs=2).model
    spec = load_entry("circuits", "quad-mnist").params.spec
    compiled = compile_network(model, splits.input_shape, spec, 16)
    circuit = compiled.circuit
    x = circuit.pad_inputs(F.elements(quantize_inputs(splits.test.x[:16], spec)))
    outputs, messages = prove_noninteractive(circuit, x)
    prepared = PreparedVerifier.prepare(circuit)
    assert (verify_noninteractive(prepared, x, outputs, messages) == outputs).all()
    assert (
        F.signed(outputs[:, :10]).argmax(1) == circuit_predictions(compiled, splits.test.x[:16])
    ).all()
