"""Exact import of fully integer .tflite models: every int8 value equal to LiteRT's
reference kernels (the fixtures, real and random inputs), TFLite's rounding laws
(hypothesis), proofs of imported networks in both modes with every dishonest prover
rejected, refusals that name the operator, and ``vtrust int8 import`` end to end."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.attacks.int8_cheats import cheating_prover
from vtrust.cli import run
from vtrust.errors import CircuitError, ModelFileError, ProofRejected
from vtrust.proofs.channel import InteractiveChannel, prove_fiat_shamir
from vtrust.proofs.int8 import protocol as P
from vtrust.proofs.int8.network import Conv, Requant, requantise, rounded
from vtrust.proofs.protocol import RandomChallenges

litert = pytest.importorskip("ai_edge_litert.interpreter")
from vtrust.proofs.int8.litert import (  # noqa: E402 — after the optional-extra check
    compare_with_litert,
    import_tflite,
    quantize_multiplier,
)

FIXTURES = Path(__file__).parent / "fixtures"
DIGITS = (FIXTURES / "digits_int8.tflite").read_bytes()
MNIST = (FIXTURES / "mnist_int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def imported():
    return {"digits": import_tflite(DIGITS, "digits"), "mnist": import_tflite(MNIST, "mnist")}


def random_inputs(model, n, seed):
    low, high = model.network.input_range
    return np.random.default_rng(seed).integers(low, high + 1, (n, *model.network.input_shape))


def test_the_digits_model_equals_litert_reference_kernels_on_real_images(imported, digits):
    model = imported["digits"]
    x = model.quantized.quantize_inputs(digits.test.x[:64])
    report = compare_with_litert(model, DIGITS, x, "reference", digits.test.y[:64])
    assert report["exact"], report
    assert len(report["layers"]) == 4 and report["logit_values"] == 640
    assert report["vtrust_accuracy"] == report["litert_accuracy"] > 0.9


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_random_inputs_equal_litert_reference_kernels_in_every_layer(imported, name):
    model = imported[name]
    raw = DIGITS if name == "digits" else MNIST
    report = compare_with_litert(model, raw, random_inputs(model, 24, 1), "reference")
    assert report["exact"], report


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_imported_for_the_optimised_kernels_it_equals_them(name):
    """Their per-channel dense layers round twice (see the module): imported for them,
    every value equals theirs; imported for the reference kernels, some differ."""
    raw = DIGITS if name == "digits" else MNIST
    model = import_tflite(raw, name, "builtin")
    x = random_inputs(model, 200, 2)
    assert compare_with_litert(model, raw, x, "builtin")["exact"]
    if name == "mnist":
        assert not compare_with_litert(import_tflite(raw), raw, x, "builtin")["exact"]


def test_the_comparison_sees_a_changed_weight(imported):
    """The exactness check is not vacuous: one weight changed by one is caught."""
    model = imported["digits"]
    network = model.network
    conv = network.layers[0]
    weight = conv.weight.copy()
    weight[0, 0, 1, 1] += 1 if weight[0, 0, 1, 1] < 127 else -1
    layers = (Conv(weight, conv.bias, conv.stride, conv.padding), *network.layers[1:])
    quantized = replace(model.quantized, network=replace(network, layers=layers))
    changed = replace(model, quantized=quantized)
    report = compare_with_litert(changed, DIGITS, random_inputs(model, 16, 3), "reference")
    assert not report["exact"]


def _srdhm(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul, transcribed (C division truncates)."""
    ab = a * b
    total = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    quotient = abs(total) >> 31
    return quotient if total >= 0 else -quotient


def _rdbp(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT, transcribed."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@settings(max_examples=300, deadline=None)
@given(acc=st.integers(-(1 << 26), 1 << 26), m=st.integers(1 << 30, (1 << 31) - 1),
       e=st.integers(0, 14), table_bits=st.integers(0, 16))  # fmt: skip
def test_tflite_roundings_follow_from_any_quotient(acc, m, e, table_bits):
    """The double rounding is gemmlowp's two steps; the single one is one floor; and
    every rounding's output is a function of ⌊(M·acc + 2^30) / 2^T⌋ for T ≤ 16 — what
    the verifier holds."""
    values = np.array([[acc]], dtype=np.int64)
    for rounding in ("floor", "double", "single", "double-up"):
        layer = Requant(np.array([m]), 31, False, rounding,
                        None if rounding == "floor" else np.array([e]), (-255, 255))  # fmt: skip
        full = requantise(values, layer)
        quotient = rounded(values, layer) >> table_bits
        assert layer.apply(quotient, table_bits)[0, 0] == full[0, 0]
        if rounding == "double":
            want = _rdbp(_srdhm(acc, m), e)
        elif rounding == "double-up":
            want = (_srdhm(acc, m) + ((1 << e) >> 1)) >> e
        elif rounding == "single":
            want = (acc * m + (1 << (30 + e))) >> (31 + e)
        else:
            want = (acc * m + (1 << 30)) >> 31
        assert full[0, 0] == max(-255, min(255, want))


@settings(max_examples=300, deadline=None)
@given(real=st.floats(2.0**-31, 0.999999, allow_nan=False))
def test_quantize_multiplier_is_a_q31_approximation(real):
    m, shift = quantize_multiplier(real)
    assert (1 << 30) <= m < 1 << 31 and shift <= 0
    assert abs(m * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)


@pytest.mark.parametrize("mode", ["interactive", "fiat-shamir"])
def test_an_imported_network_proves_and_verifies(imported, mode):
    network = imported["mnist"].network
    x = random_inputs(imported["mnist"], 2, 4)
    truth = network.forward(x)[-1]
    if mode == "interactive":
        verified = P.run_interactive(network, x)
    else:
        verified = P.verify_noninteractive(network, x, P.prove_noninteractive(network, x))
    assert (verified.outputs == truth).all()


@pytest.mark.parametrize("cheat", ["relu", "rounding", "maxpool", "output", "wraparound"])
def test_every_dishonest_prover_is_rejected_on_an_imported_network(imported, cheat):
    network = imported["mnist"].network
    x = random_inputs(imported["mnist"], 2, 5)
    with pytest.raises(ProofRejected):
        P.verify_noninteractive(network, x, prove_fiat_shamir(cheating_prover(network, x, cheat),
                                                              P.statement(network, x)))  # fmt: skip
    with pytest.raises(ProofRejected):
        P.verify(network, x, InteractiveChannel(cheating_prover(network, x, cheat),
                                                RandomChallenges()))  # fmt: skip


def test_inputs_outside_the_zero_point_range_are_refused(imported):
    from vtrust.errors import InputError

    network = imported["digits"].network
    assert network.input_range == (0, 255)
    with pytest.raises(InputError, match=r"in \[0, 255\]"):
        network.check_inputs(np.full((1, *network.input_shape), -1))


def _repacked(mutate) -> bytes:
    import flatbuffers

    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(DIGITS, 0)
    mutate(model, schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _op(model, schema, kind):
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return next(op for op in model.subgraphs[0].operators
                if codes[op.opcodeIndex] == getattr(schema.BuiltinOperator, kind))  # fmt: skip


def test_the_repacked_fixture_still_imports():
    assert (
        import_tflite(_repacked(lambda m, s: None)).network.sha256()
        == import_tflite(DIGITS).network.sha256()
    )


def _average_pool(model, schema):
    for code in model.operatorCodes:
        if code.builtinCode == schema.BuiltinOperator.MAX_POOL_2D:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.AVERAGE_POOL_2D


def _dilated(model, schema):
    _op(model, schema, "CONV_2D").builtinOptions.dilationWFactor = 2


def _tanh(model, schema):
    _op(model, schema, "CONV_2D").builtinOptions.fusedActivationFunction = 4


def _wide_weight(model, schema):
    op = _op(model, schema, "CONV_2D")
    buffer = model.buffers[model.subgraphs[0].tensors[op.inputs[1]].buffer]
    data = np.array(buffer.data, dtype=np.uint8)
    data[0] = 128  # −128 as int8
    buffer.data = data


@pytest.mark.parametrize("mutate, message", [
    (_average_pool, "AVERAGE_POOL_2D"), (_dilated, "dilated"),
    (_tanh, "fused activation 4"), (_wide_weight, "narrow range"),
])  # fmt: skip
def test_what_the_circuit_cannot_express_is_refused_naming_the_operator(mutate, message):
    with pytest.raises(CircuitError, match=message) as caught:
        import_tflite(_repacked(mutate), "m.tflite")
    assert "m.tflite: operator" in str(caught.value)


def test_a_float_model_and_garbage_are_refused():
    with pytest.raises(CircuitError, match="fully integer"):
        import_tflite((FIXTURES / "digits_float.tflite").read_bytes(), "f")
    with pytest.raises(ModelFileError, match="not a TFLite flatbuffer"):
        import_tflite(b"\0" * 64, "g")
    with pytest.raises(ModelFileError):
        import_tflite(DIGITS[:4000], "cut")


def test_vtrust_int8_import_then_prove_and_verify(tmp_path, capsys, digits):
    model = tmp_path / "m.tflite"
    model.write_bytes(DIGITS)
    net = tmp_path / "m.int8"
    assert run(["-q", "int8", "import", "--model", str(model), "--out", str(net),
                "--images", "32", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["exact"] and report["images"] == 32 and report["kernels"] == "reference"
    np.save(tmp_path / "x.npy", digits.test.x[:3])
    assert run(["-q", "int8", "prove", "--network", str(net), "--input", str(tmp_path / "x.npy"),
                "--out", str(tmp_path / "p.json")]) == 0  # fmt: skip
    capsys.readouterr()
    proof, images = str(tmp_path / "p.json"), str(tmp_path / "x.npy")
    assert run(["-q", "int8", "verify", "--network", str(net), "--proof", proof, "--input",
                images, "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["accepted"]


@pytest.mark.parametrize("contents, message", [
    ((FIXTURES / "digits_float.tflite").read_bytes(), "fully integer"),
    (b"TFL3 is not enough", "not a TFLite flatbuffer"),
    (b"\x1c\0\0\0TFL3" + bytes(range(200)), "not a TFLite flatbuffer"),
    (DIGITS[:6000], "not a TFLite flatbuffer"),
    ((FIXTURES / "random-uniform-fast.toml").read_bytes(), "not a TFLite flatbuffer"),
])  # fmt: skip
def test_vtrust_int8_import_of_a_bad_model_is_one_line_exit_2(tmp_path, capsys, contents, message):
    model = tmp_path / "bad.tflite"
    model.write_bytes(contents)
    out = tmp_path / "net.int8"
    code = run(["-q", "int8", "import", "--model", str(model), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_vtrust_int8_attack_runs_the_catalog_against_your_network(tmp_path, capsys):
    from vtrust.proofs.int8.files import save_network

    net = tmp_path / "m.int8"
    save_network(net, import_tflite(MNIST).quantized)
    assert run(["-q", "int8", "attack", "--network", str(net), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    applicable = [r for r in result["rows"] if r["applicable"]]
    assert result["broken"] == 0 and len(applicable) == 10  # every cheat but the add, twice
    assert all(r["reason"] for r in applicable)


def test_fuzzed_flatbuffers_raise_model_file_or_circuit_errors_only():
    """Flipped bytes anywhere in the file: the import succeeds (a changed weight, say)
    or raises ModelFileError / CircuitError — never another exception."""
    rng = np.random.default_rng(7)
    outcomes = set()
    for _ in range(150):
        raw = bytearray(DIGITS)
        for position in rng.integers(0, len(raw), int(rng.integers(1, 4))):
            raw[position] = int(rng.integers(256))
        try:
            import_tflite(bytes(raw), "fuzzed")
            outcomes.add("imported")
        except (ModelFileError, CircuitError):
            outcomes.add("refused")
    assert outcomes == {"imported", "refused"}


@pytest.mark.parametrize("edit", ["rounding", "clamp", "input_range", "zero_point", "post_shift",
                                  "version"])  # fmt: skip
def test_network_files_with_malformed_new_fields_are_one_line_exit_2(tmp_path, capsys, edit):
    """The fields an imported network adds (rounding, post-shifts, clamps, input range,
    zero point), each made invalid in the file's own record: exit 2, one line, and
    nothing proved — whether the construction or the hash check refuses it."""
    from safetensors.numpy import load as st_load
    from safetensors.numpy import save as st_save

    from vtrust.proofs.int8.files import save_network

    good = tmp_path / "good.int8"
    save_network(good, import_tflite(DIGITS).quantized)
    raw = good.read_bytes()
    tensors = st_load(raw)
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    meta = json.loads(header["__metadata__"]["vtrust-int8"])
    requant = next(i for i, r in enumerate(meta["layers"]) if r["kind"] == "requant")
    if edit == "rounding":
        meta["layers"][requant]["rounding"] = "stochastic"
    elif edit == "clamp":
        meta["layers"][requant]["clamp"] = [0, 999]
    elif edit == "input_range":
        meta["input_range"] = [-1000, 1000]
    elif edit == "zero_point":
        meta["input_zero_point"] = "-128"
    elif edit == "post_shift":
        tensors[f"layer{requant}.post_shift"] = np.full(16, 40, dtype=np.int64)
    else:
        meta["version"] = 1
    bad = tmp_path / "bad.int8"
    bad.write_bytes(st_save(tensors, metadata={"vtrust-int8": json.dumps(meta)}))
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    out = tmp_path / "p.json"
    capsys.readouterr()
    code = run(["-q", "int8", "prove", "--network", str(bad), "--input", str(tmp_path / "x.npy"),
                "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()
