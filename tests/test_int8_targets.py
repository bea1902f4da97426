"""``vtrust int8 quantize`` from the user's own model: an ONNX graph (read into a chain
of torch layers, checked against the graph), a state dict with its module class; what
cannot be traced into layers refused in one line (exit 2, nothing written)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from vtrust.cli import run
from vtrust.errors import CircuitError

onnx = pytest.importorskip("onnx")


def quantize(capsys, byom, name, out, *extra):
    capsys.readouterr()
    code = run(["-q", "int8", "quantize", "--model", str(byom[name]), "--data",
                f"npz:{byom['data']}", "--out", str(out), "--json", *extra])  # fmt: skip
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else captured.err


@pytest.mark.parametrize("name", ["onnx", "state_dict"])
def test_the_users_residual_cnn_quantises_from_onnx_and_a_state_dict(
    byom, tmp_path, capsys, monkeypatch, name
):
    """The byom fixture: conv-BN-ReLU, a residual block, max-pool, dropout, linear."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    extra = ["--arch-module", "byom_model:ResidualNet"] if name == "state_dict" else []
    out = tmp_path / f"{name}.int8"
    code, result = quantize(capsys, byom, name, out, *extra)
    assert code == 0, result
    assert result["float_accuracy"] > 0.9
    assert result["int8_accuracy"] >= result["float_accuracy"] - 0.02
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    assert run(["-q", "int8", "prove", "--network", str(out), "--input",
                str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.json")]) == 0  # fmt: skip
    assert run(["-q", "int8", "verify", "--network", str(out), "--proof",
                str(tmp_path / "p.json"), "--input", str(tmp_path / "x.npy")]) == 0  # fmt: skip


def test_the_onnx_chain_agrees_with_the_graph_and_keeps_the_residual_add(byom):
    from vtrust.proofs.int8.onnx_chain import Chain, quantizable_module
    from vtrust.targets import load_target_and_splits

    target, splits = load_target_and_splits(byom["onnx"], f"npz:{byom['data']}")
    chain = quantizable_module(target, splits.victim.x[:64])
    assert isinstance(chain, Chain) and any(isinstance(s, int) for s in chain.plan)
    x = torch.from_numpy(splits.test.x[:32])
    with torch.no_grad():
        assert torch.allclose(chain(x), target.module(x), atol=1e-4)


@pytest.mark.parametrize("name, message", [
    ("torchscript", "TorchScript"), ("export", "torch.export"),
])  # fmt: skip
def test_what_cannot_be_traced_into_layers_is_one_line_exit_2(byom, tmp_path, capsys, name,
                                                              message):  # fmt: skip
    out = tmp_path / "x.int8"
    code, err = quantize(capsys, byom, name, out)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_tflite_model_is_pointed_to_int8_import(tmp_path, capsys):
    out = tmp_path / "x.int8"
    code = run(["-q", "int8", "quantize", "--model", "tests/fixtures/digits_int8.tflite",
                "--data", "digits", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "vtrust int8 import" in err and not out.exists()


def test_an_operator_outside_the_circuit_is_named(tmp_path):
    from vtrust.proofs.int8.onnx_chain import chain_module
    from vtrust.targets.onnx_torch import OnnxModule

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(144, 10))
    path = tmp_path / "sigmoid.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False)
    module = OnnxModule(onnx.load(str(path)))
    with pytest.raises(CircuitError, match="Sigmoid node 2"):
        chain_module(module, np.zeros((2, 1, 8, 8), np.float32))
