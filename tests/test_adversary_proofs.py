"""Proofs against a prover who has read the verifier: it chooses the circuit, the inputs,
the padding and the count; every such statement substitution must be rejected when the
verifier brings its own circuit and inputs."""

import json
import math

import numpy as np
import pytest

from vtrust.catalog import load_entry, parse_entry
from vtrust.cli import run
from vtrust.models import load_model
from vtrust.models.files import model_sha256
from vtrust.proofs import field as F
from vtrust.proofs.files import proof_document, write_proof
from vtrust.proofs.protocol import PreparedVerifier, noninteractive_soundness, prove_noninteractive
from vtrust.proofs.quantize import quantize_inputs

COARSE = (
    'kind = "quantized"\n[params]\narch = "quad"\ninput_bits = 2\nweight_bits = 3\nbatch = 64\n'
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits, quad_files):
    d = tmp_path_factory.mktemp("adv-proofs")
    _, raw, tuned = quad_files
    np.save(d / "sent.npy", digits.test.x[:16])
    np.save(d / "other.npy", digits.test.x[16:32])
    return d, raw, tuned


def forged_proof(path, model_file, entry, x, count):
    """A prover's honest proof about the statement it chose: circuit ``entry``, padded
    field inputs ``x``, ``count`` — written as a proof file."""
    loaded = load_model(model_file)
    compiled = entry.build().compile(loaded.model, loaded.model.spec.input_shape)
    circuit = compiled.circuit
    outputs, messages = prove_noninteractive(circuit, x, count=count)
    doc = proof_document(circuit=circuit, circuit_entry=entry.to_json(),
                         model_sha256=model_sha256(loaded.model), inputs=x, count=count,
                         outputs=outputs, messages=messages)  # fmt: skip
    write_proof(path, doc)
    return compiled


def verify(capsys, model_file, proof, *extra):
    code = run(["-q", "verify", "--model", str(model_file), "--proof", str(proof), "--json",
                *extra])  # fmt: skip
    out = capsys.readouterr().out
    return code, (json.loads(out) if out else None)


def honest_inputs(model_file, images):
    loaded = load_model(model_file)
    entry = load_entry("circuits", "quad-digits")
    compiled = entry.build().compile(loaded.model, loaded.model.spec.input_shape)
    return (
        entry,
        compiled,
        compiled.circuit.pad_inputs(F.elements(quantize_inputs(images, compiled.spec))),
    )


def test_finding2_a_coarser_circuit_is_rejected(capsys, setup, digits):
    d, _, tuned = setup
    coarse = parse_entry("circuits", COARSE, name="quad-digits", source="prover's")
    loaded = load_model(tuned)
    compiled = coarse.build().compile(loaded.model, loaded.model.spec.input_shape)
    x = compiled.circuit.pad_inputs(F.elements(quantize_inputs(digits.test.x[:16], compiled.spec)))
    forged_proof(d / "coarse.json", tuned, coarse, x, 16)
    code, result = verify(capsys, tuned, d / "coarse.json")
    assert code == 1 and "different circuit" in result["reason"]
    # the prover's own label cannot pin it either: only --circuit (the verifier's) can
    code, result = verify(capsys, tuned, d / "coarse.json", "--circuit", "quad-digits")
    assert code == 1


def test_finding2_a_model_without_a_recorded_circuit_needs_one(capsys, setup):
    d, raw, tuned = setup
    entry, _, x = honest_inputs(tuned, np.load(d / "sent.npy"))
    forged_proof(d / "raw.json", tuned, entry, x, 16)
    code = run(["-q", "verify", "--model", str(raw), "--proof", str(d / "raw.json")])
    err = capsys.readouterr().err
    assert code == 2 and "records no circuit" in err and err.count("\n") == 1


def test_finding3_substituted_inputs_are_rejected(capsys, setup):
    d, _, tuned = setup
    entry, _, x = honest_inputs(tuned, np.load(d / "other.npy"))
    forged_proof(d / "swap.json", tuned, entry, x, 16)  # a valid proof about other images
    code, result = verify(capsys, tuned, d / "swap.json")
    assert code == 0 and not result["inputs_checked"] and "only" in result["checked"]
    code, result = verify(capsys, tuned, d / "swap.json", "--input", str(d / "sent.npy"))
    assert code == 1 and "other inputs" in result["reason"]
    entry, _, x = honest_inputs(tuned, np.load(d / "sent.npy"))
    forged_proof(d / "ok.json", tuned, entry, x, 16)
    code, result = verify(capsys, tuned, d / "ok.json", "--input", str(d / "sent.npy"))
    assert code == 0 and result["inputs_checked"] and result["checked"].startswith("outputs =")


@pytest.mark.parametrize(
    "name",
    ["pixel-minus-one", "pixel-2^20", "padding-row", "count-changed", "count-over-blank-rows"],
)
def test_finding3_invalid_statements_are_rejected(capsys, setup, name):
    d, _, tuned = setup
    entry, compiled, x = honest_inputs(tuned, np.load(d / "sent.npy"))
    x, count = x.copy(), 16
    if name == "pixel-minus-one":
        x[0, 0] = F.P - 1
    elif name == "pixel-2^20":
        x[0, 0] = 1 << 20
    elif name == "padding-row":
        x[20, 3] = 1
    elif name == "count-over-blank-rows":  # the dropped rows are blank: padding checks pass
        x[12:16] = 0
    path = d / f"{name}.json"
    forged_proof(path, tuned, entry, x, count)
    if name.startswith("count"):  # a valid proof whose count was edited afterwards
        doc = json.loads(path.read_text())
        doc["count"] = 12
        path.write_text(json.dumps(doc))
    code, result = verify(capsys, tuned, path)
    assert code == 1 and not result["accepted"], result
    if name == "count-over-blank-rows":  # only the count bound in the statement catches it
        assert "padding" not in result["reason"], result


def test_a_missing_proof_file_is_bad_input(capsys, setup, tmp_path):
    _, _, tuned = setup
    code = run(["-q", "verify", "--model", str(tuned), "--proof", str(tmp_path / "none.json")])
    err = capsys.readouterr().err
    assert code == 2 and "no such proof file" in err and err.count("\n") == 1


def test_prove_refuses_what_it_cannot_prove_honestly(capsys, setup, tmp_path):
    d, raw, tuned = setup
    out = tmp_path / "p.json"
    np.save(tmp_path / "complex.npy", np.zeros((2, 1, 8, 8), np.complex64))
    cases = [
        (["--model", str(tuned), "--input", str(tmp_path / "complex.npy")], "real numbers"),
        (["--model", str(raw), "--circuit", "quad-digits", "--input", str(d / "sent.npy")],
         "not quantised"),
        (["--model", str(tuned), "--circuit", "quad-mnist", "--input", str(d / "sent.npy")],
         "quantised for circuit"),
    ]  # fmt: skip
    for args, message in cases:
        code = run(["prove", *args, "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
        assert not out.exists()


def test_noninteractive_soundness_is_stated_honestly(capsys, setup):
    d, _, tuned = setup
    _, compiled, _ = honest_inputs(tuned, np.load(d / "sent.npy"))
    bound = noninteractive_soundness(compiled.circuit)
    # challenges in F_{p^2}: the largest round error is the outputs' MLE (log2(64·16) = 10
    # variables) over p²: 2^(122 − 3.3) — over F_p it was 3/p, 59.4 bits, 2^-19.4 at 2^40
    assert bound["bits"] == pytest.approx(2 * math.log2(F.P) - math.log2(10), abs=0.01)
    assert bound["bits"] >= 100 and bound["at_2^40"] < 2**-70
    assert PreparedVerifier.prepare(compiled.circuit).soundness_bits == pytest.approx(bound["bits"])
    code, result = verify(capsys, tuned, d / "ok.json")
    assert code == 0 and result["soundness_bits"] == pytest.approx(bound["bits"])


@pytest.mark.parametrize(
    "name", [f"{s}-substitution" for s in ("circuit", "input", "pixel", "padding", "count")]
)
def test_the_catalogs_statement_substitutions_are_rejected(setup, name):
    """The catalog attacks (run by `vtrust audit`) against the quantised model."""
    d, _, tuned = setup
    model = load_model(tuned).model
    attack = load_entry("attacks", name).build()
    images, decoys = np.load(d / "sent.npy"), np.load(d / "other.npy")
    result = attack.attempt(model, load_entry("circuits", "quad-digits"), images, decoys)
    assert not result["accepted"] and result["reason"], result
