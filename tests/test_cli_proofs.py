"""``vtrust quantize / prove / verify`` end to end, and proof files fuzzed every way:
the verifier answers ProofRejected (exit 1), never another exception."""

import copy
import json

import numpy as np
import pytest

from vtrust.cli import run
from vtrust.errors import ProofRejected
from vtrust.models import load_model
from vtrust.models.files import model_sha256
from vtrust.proofs.compiler import CircuitCompiler, CircuitParams
from vtrust.proofs.files import parse_statement, read_header
from vtrust.proofs.protocol import PreparedVerifier, verify_noninteractive


@pytest.fixture(scope="module")
def proved(tmp_path_factory, digits, quad_files):
    d = tmp_path_factory.mktemp("proofs")
    tuned = quad_files[2]
    np.save(d / "x.npy", digits.test.x[:5])
    assert run(["-q", "prove", "--model", str(tuned), "--circuit", "quad-digits",
                "--input", str(d / "x.npy"), "--out", str(d / "p.json")]) == 0  # fmt: skip
    return d, tuned, json.loads((d / "p.json").read_text())


def verify_file(capsys, tuned, path):
    code = run(["-q", "verify", "--model", str(tuned), "--proof", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_an_honest_proof_is_accepted(capsys, proved):
    d, tuned, doc = proved
    code, result = verify_file(capsys, tuned, d / "p.json")
    assert code == 0 and result["accepted"] and len(result["predictions"]) == 5
    assert doc["count"] == 5 and doc["field"] == "2^61-1"


def test_a_layered_proof_is_accepted_and_longer(capsys, proved):
    d, tuned, doc = proved
    assert doc["protocol"] == "fused"
    out = d / "layered.json"
    assert run(["-q", "prove", "--model", str(tuned), "--circuit", "quad-digits", "--input",
                str(d / "x.npy"), "--out", str(out), "--protocol", "layered"]) == 0  # fmt: skip
    capsys.readouterr()
    layered = json.loads(out.read_text())
    assert layered["protocol"] == "layered" and len(layered["messages"]) > len(doc["messages"])
    code, result = verify_file(capsys, tuned, out)
    _, fused = verify_file(capsys, tuned, d / "p.json")
    assert code == 0 and result["predictions"] == fused["predictions"]


def mutations(doc):
    """(name, document) pairs: one forged or malformed variant each."""
    p = 2**61 - 1
    out = []

    def variant(name, fn):
        forged = copy.deepcopy(doc)
        fn(forged)
        out.append((name, forged))

    variant("output+1", lambda f: f["outputs"][0].__setitem__(0, (f["outputs"][0][0] + 1) % p))
    variant("message+1", lambda f: f["messages"][2].__setitem__(1, (f["messages"][2][1] + 1) % p))
    variant("input+1", lambda f: f["inputs"][0].__setitem__(0, (f["inputs"][0][0] + 1) % p))
    variant("count", lambda f: f.__setitem__("count", 0))
    variant("count-type", lambda f: f.__setitem__("count", "5"))
    variant("batch", lambda f: f.__setitem__("batch", 2**40))
    variant("version", lambda f: f.__setitem__("version", 1))
    variant("field", lambda f: f.__setitem__("field", "2^31-1"))
    variant("model", lambda f: f.__setitem__("model_sha256", "0" * 64))
    variant("out-of-range", lambda f: f["messages"][0].__setitem__(0, p))
    variant("negative", lambda f: f["messages"][0].__setitem__(0, -1))
    variant("float", lambda f: f["messages"][0].__setitem__(0, 1.0))
    variant("string", lambda f: f["messages"][0].__setitem__(0, "1"))
    variant("huge-message", lambda f: f["messages"].__setitem__(0, list(range(100_000))))
    variant("missing-messages", lambda f: f.pop("messages"))
    variant("short-messages", lambda f: f["messages"].pop())
    variant("nested", lambda f: f["inputs"].__setitem__(0, [[1]]))
    variant("circuit-type", lambda f: f.__setitem__("circuit", [1, 2]))
    variant("other-protocol", lambda f: f.__setitem__("protocol", "layered"))
    variant("unknown-protocol", lambda f: f.__setitem__("protocol", "magic"))
    variant("no-protocol", lambda f: f.pop("protocol"))
    return out


def test_every_forged_or_malformed_document_is_rejected(capsys, proved, tmp_path):
    d, tuned, doc = proved
    for name, forged in mutations(doc):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(forged))
        code, result = verify_file(capsys, tuned, path)
        assert code == 1 and not result["accepted"], name


def test_truncated_and_garbage_files_are_rejected(capsys, proved, tmp_path):
    d, tuned, _ = proved
    raw = (d / "p.json").read_bytes()
    cases = {"trunc": raw[: len(raw) // 3], "empty": b"", "binary": bytes(range(256)),
             "list": b"[1, 2]", "deep": b"[" * 100_000}  # fmt: skip
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, result = verify_file(capsys, tuned, path)
        assert code == 1 and not result["accepted"], name


def test_random_byte_flips_never_escape_as_other_exceptions(proved, tmp_path):
    d, tuned, doc = proved
    model = load_model(tuned).model
    circuit = (
        CircuitCompiler(CircuitParams(**doc["circuit"]["params"]))
        .compile(model, model.spec.input_shape)
        .circuit
    )
    prepared = PreparedVerifier.prepare(circuit)
    raw = bytearray((d / "p.json").read_bytes())
    rng = np.random.default_rng(0)
    for i in range(40):
        flipped = bytearray(raw)
        flipped[rng.integers(0, len(raw))] ^= 1 << rng.integers(0, 8)
        path = tmp_path / f"flip{i}.json"
        path.write_bytes(bytes(flipped))
        try:
            document = read_header(path)
            x, outputs, messages, count = parse_statement(
                document, circuit, model_sha256(model), input_max=7
            )
            verify_noninteractive(
                prepared, x, outputs, messages, protocol=document["protocol"], count=count
            )
        except ProofRejected:
            continue
        # a flip that leaves the proof valid can only have hit bytes outside the statement
        after, before = statement_of(json.loads(bytes(flipped))), statement_of(doc)
        assert after == before, [k for k in before if after.get(k) != before[k]]


def statement_of(document):
    """What the verifier uses: everything but the circuit entry, the prover's label (the
    verifier compiles its own circuit and compares hashes)."""
    out = copy.deepcopy(document)
    out.pop("circuit")
    return out


def test_bad_input_exits_two(capsys, proved, tmp_path):
    d, tuned, _ = proved
    np.save(tmp_path / "wrong.npy", np.zeros((3, 1, 4, 4), np.float32))
    wrong, out = str(tmp_path / "wrong.npy"), str(tmp_path / "p.json")
    code = run(["prove", "--model", str(tuned), "--circuit", "quad-digits",
                "--input", wrong, "--out", out])  # fmt: skip
    assert code == 2 and "images must have shape" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
    code = run(["verify", "--model", str(tmp_path / "none.st"), "--proof", str(d / "p.json")])
    assert code == 2 and "cannot read model file" in capsys.readouterr().err
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY junk")
    code = run(["prove", "--model", str(tuned), "--circuit", "quad-digits",
                "--input", str(tmp_path / "junk.npy"), "--out", out])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a .npy array" in err
    assert not (tmp_path / "p.json").exists()


def test_quantize_refuses_a_model_without_circuit_form(capsys, tmp_path):
    mlp, out = tmp_path / "mlp.st", tmp_path / "q.st"
    assert run(["-q", "train", "--arch", "mlp", "--epochs", "1", "--out", str(mlp)]) == 0
    code = run(["-q", "quantize", "--model", str(mlp), "--circuit", "quad-digits",
                "--epochs", "0", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not out.exists()


def test_every_outcome_is_an_exit_code_and_one_json_object(capsys, proved, tmp_path):
    """0 accepted, 1 a forged proof (a verdict), 2 a missing or unreadable proof, a
    missing model, an input of the wrong shape (bad input) — each with --json as one
    object on stdout that a pipeline can parse."""
    d, tuned, doc = proved
    forged = copy.deepcopy(doc)
    forged["outputs"][0][0] = (int(forged["outputs"][0][0]) + 1) % (2**61 - 1)  # a lie
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    (tmp_path / "junk.json").write_text("{")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 1, 5, 5), np.float32))
    model, proof = str(tuned), str(d / "p.json")
    cases = [
        (["verify", "--model", model, "--proof", proof], 0, "accepted"),
        (["verify", "--model", model, "--proof", str(tmp_path / "forged.json")], 1, "accepted"),
        (["verify", "--model", model, "--proof", str(tmp_path / "missing.json")], 2, "error"),
        (["verify", "--model", model, "--proof", str(tmp_path / "junk.json")], 1, "accepted"),
        (["verify", "--model", str(tmp_path / "none.st"), "--proof", proof], 2, "error"),
        (["prove", "--model", model, "--circuit", "quad-digits", "--input",
          str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "o.json")], 2, "error"),
        (["prove", "--model", model, "--circuit", "no-such-circuit", "--input",
          str(d / "x.npy"), "--out", str(tmp_path / "o.json")], 2, "error"),
    ]  # fmt: skip
    for argv, expected, key in cases:
        code = run(["-q", *argv, "--json"])
        out = capsys.readouterr().out
        assert code == expected, (argv, out)
        assert out.count("\n") == 1, out
        outcome = json.loads(out)
        assert key in outcome, outcome
        if key == "error":
            assert outcome["exit_code"] == 2
        else:
            assert outcome["accepted"] is (expected == 0)
    assert not (tmp_path / "o.json").exists()
