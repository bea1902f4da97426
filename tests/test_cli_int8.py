"""``vtrust int8 quantize / prove / verify`` end to end: network and proof files checked,
fuzzed proof files rejected (exit 1, never another exception), malformed network files
bad input (exit 2), nothing written where a command fails."""

import copy
import json

import numpy as np
import pytest

from vtrust.cli import run
from vtrust.models import save_model


@pytest.fixture(scope="module")
def proved(tmp_path_factory, small_cnn, digits):
    d = tmp_path_factory.mktemp("int8")
    save_model(d / "cnn.vtm", small_cnn, {"dataset": {"spec": "digits", "split_seed": 0}})
    assert run(["-q", "int8", "quantize", "--model", str(d / "cnn.vtm"), "--data", "digits",
                "--out", str(d / "cnn.int8")]) == 0  # fmt: skip
    np.save(d / "x.npy", digits.test.x[:4])
    np.save(d / "other.npy", digits.test.x[4:8])
    assert run(["-q", "int8", "prove", "--network", str(d / "cnn.int8"), "--input",
                str(d / "x.npy"), "--out", str(d / "p.json")]) == 0  # fmt: skip
    return d, json.loads((d / "p.json").read_text())


def verify(capsys, d, proof, *extra):
    capsys.readouterr()
    code = run(["-q", "int8", "verify", "--network", str(d / "cnn.int8"), "--proof", str(proof),
                "--json", *extra])  # fmt: skip
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


def test_an_honest_proof_is_accepted_on_your_inputs(capsys, proved):
    d, doc = proved
    code, result = verify(capsys, d, d / "p.json", "--input", str(d / "x.npy"))
    assert code == 0 and result["accepted"] and result["inputs_checked"]
    assert len(result["predictions"]) == 4 and result["soundness_bits"] >= 100


def test_a_proof_about_other_inputs_is_rejected(capsys, proved):
    d, _ = proved
    code, result = verify(capsys, d, d / "p.json", "--input", str(d / "other.npy"))
    assert code == 1 and "other inputs" in result["reason"]


def mutations(doc):
    """Every kind of edit a device could make to a proof file."""
    yield "format", {**doc, "format": "x"}
    yield "network", {**doc, "network_sha256": "0" * 64}
    yield "inputs float", {**doc, "inputs": np.asarray(doc["inputs"], float).tolist()}
    wrong = copy.deepcopy(doc)
    wrong["inputs"][0][0][0][0] ^= 1
    yield "inputs", wrong
    for k in range(0, len(doc["messages"]), max(1, len(doc["messages"]) // 12)):
        for edit in ("bump", "drop", "extend", "string", "kind"):
            forged = copy.deepcopy(doc)
            message = forged["messages"][k]
            if edit == "bump":
                message["values"][0] += 1
            elif edit == "drop":
                message["values"] = message["values"][:-1]
            elif edit == "extend":
                message["values"].append(1)
            elif edit == "string":
                message["values"][0] = "1"
            else:
                message["kind"] = "round" if message["kind"] != "round" else "halves"
            yield f"message {k} {edit}", forged
    yield "messages missing", {**doc, "messages": doc["messages"][:-1]}
    yield "messages extra", {**doc, "messages": [*doc["messages"], doc["messages"][-1]]}
    yield "not an object", [1, 2]


def test_fuzzed_proof_files_are_rejected_with_exit_1(capsys, proved, tmp_path):
    d, doc = proved
    for name, forged in mutations(doc):
        path = tmp_path / "forged.json"
        path.write_text(json.dumps(forged))
        code, result = verify(capsys, d, path)
        assert code == 1 and result["accepted"] is False, name
    path.write_text("{not json")
    assert verify(capsys, d, path)[0] == 1


def test_malformed_network_files_are_bad_input(capsys, proved, tmp_path):
    d, _ = proved
    raw = (d / "cnn.int8").read_bytes()
    for name, content in (("truncated", raw[: len(raw) // 2]), ("empty", b""),
                          ("flipped", raw[:-40] + bytes(b ^ 0xFF for b in raw[-40:]))):  # fmt: skip
        bad = tmp_path / f"{name}.int8"
        bad.write_bytes(content)
        capsys.readouterr()
        code = run(["-q", "int8", "verify", "--network", str(bad), "--proof", str(d / "p.json")])
        assert code == 2, name
        assert "Traceback" not in capsys.readouterr().err


def test_prove_refuses_bad_images_and_writes_nothing(capsys, proved, tmp_path):
    d, _ = proved
    np.save(tmp_path / "big.npy", np.full((1, 1, 8, 8), 2.0))
    np.save(tmp_path / "shape.npy", np.zeros((1, 3, 8, 8)))
    for images in ("big.npy", "shape.npy"):
        out = tmp_path / "p.json"
        code = run(["-q", "int8", "prove", "--network", str(d / "cnn.int8"), "--input",
                    str(tmp_path / images), "--out", str(out)])  # fmt: skip
        assert code == 2 and not out.exists(), images
