import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust.errors import InputError, ModelFileError
from vtrust.models import (
    ARCHITECTURES,
    TrainConfig,
    accuracy,
    build_model,
    fit,
    load_model,
    model_sha256,
    predict_proba,
    save_model,
)
from vtrust.models.files import load_model_bytes
from vtrust.models.header import read_model_header
from vtrust.models.plans import state_shapes


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 8, 8)])
def test_architectures_map_images_to_logits(arch, shape):
    model = build_model(arch, shape, 7, seed=0)
    out = model(torch.zeros((5, *shape)))
    assert out.shape == (5, 7)
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 7


def test_build_model_refuses_bad_arguments():
    with pytest.raises(InputError, match="unknown architecture"):
        build_model("resnet", (1, 8, 8), 10)
    with pytest.raises(InputError, match="no parameter"):
        build_model("mlp", (1, 8, 8), 10, {"depth": 3})
    with pytest.raises(InputError):
        build_model("cnn", (1, 6, 6), 10)


def test_quad_net_is_polynomial():
    """t -> f(t·x) is a polynomial of degree 4 in t, so its 5th finite difference vanishes."""
    model = build_model("quad", (1, 8, 8), 10, seed=1).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    values = torch.stack([model(t * x) for t in torch.arange(6, dtype=torch.float64)])
    fifth = sum(c * v for c, v in zip([-1, 5, -10, 10, -5, 1], values, strict=True))
    assert torch.allclose(fifth, torch.zeros_like(fifth), atol=1e-9 * values.abs().max().item())
    fourth = sum(c * v for c, v in zip([1, -4, 6, -4, 1], values[:5], strict=True))
    assert fourth.abs().max() > 1e-6  # and it really is of degree 4


def test_training_is_deterministic(digits):
    shas = []
    for _ in range(2):
        model = build_model("mlp", digits.input_shape, 10, seed=5)
        fit(model, digits.victim, TrainConfig(epochs=2, seed=5))
        shas.append(model_sha256(model))
    assert shas[0] == shas[1]
    other = build_model("mlp", digits.input_shape, 10, seed=6)
    fit(other, digits.victim, TrainConfig(epochs=2, seed=6))
    assert model_sha256(other) != shas[0]


def test_penalties_and_parameter_subsets_are_used(digits):
    model = build_model("mlp", digits.input_shape, 10, seed=0)
    frozen = [p.detach().clone() for p in model.layers.fc1.parameters()]
    calls = []

    def penalty(m):
        calls.append(1)
        return 0.0 * m.head.weight.sum()

    fit(
        model,
        digits.victim,
        TrainConfig(epochs=1),
        penalties=[penalty],
        parameters=list(model.head.parameters()),
    )
    assert len(calls) == -(-len(digits.victim) // 64)
    assert all(
        torch.equal(a, b) for a, b in zip(frozen, model.layers.fc1.parameters(), strict=True)
    )


@pytest.fixture()
def model_file(tmp_path, small_mlp):
    path = tmp_path / "m.safetensors"
    save_model(
        path, small_mlp, {"test_accuracy": 0.9, "dataset": {"spec": "digits", "split_seed": 0}}
    )
    return path


def test_model_file_round_trip(model_file, small_mlp, digits):
    loaded = load_model(model_file)
    assert loaded.sha256 == model_sha256(small_mlp)
    assert loaded.metadata["arch"]["name"] == "mlp"
    assert loaded.metadata["test_accuracy"] == 0.9
    assert np.array_equal(
        predict_proba(loaded.model, digits.test.x), predict_proba(small_mlp, digits.test.x)
    )
    assert accuracy(loaded.model, digits.test) == accuracy(small_mlp, digits.test)
    assert [p.name for p in model_file.parent.iterdir()] == ["m.safetensors"]  # no temp files


def test_truncated_model_files_are_rejected(model_file):
    raw = model_file.read_bytes()
    for cut in (0, 4, 8, 100, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ModelFileError):
            load_model_bytes(raw[:cut])


def test_bit_flips_are_detected(model_file):
    raw = bytearray(model_file.read_bytes())
    rng = np.random.default_rng(0)
    (header_len,) = struct.unpack("<Q", raw[:8])
    positions = list(range(0, 8 + header_len, 7)) + list(
        rng.integers(8 + header_len, len(raw), 300)
    )
    for pos in positions:
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(ModelFileError):
            load_model_bytes(bytes(flipped))


def _rewrite_metadata(raw: bytes, change) -> bytes:
    import hashlib

    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["vtrust"])
    change(meta)
    text = json.dumps(meta, sort_keys=True)
    header["__metadata__"] = {
        "vtrust": text,
        "vtrust_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    return struct.pack("<Q", len(new_header)) + new_header + raw[8 + n :]


def test_wrong_version_and_architecture(model_file):
    raw = model_file.read_bytes()
    assert load_model_bytes(_rewrite_metadata(raw, lambda m: None)).sha256  # the helper is sound
    cases = {
        "version": lambda m: m.update(format_version=99),
        "architecture": lambda m: m["arch"].update(name="cnn"),
        "unknown architecture": lambda m: m["arch"].update(name="transformer"),
        "not fit": lambda m: m["arch"]["params"].update(hidden=[32, 64]),
        "malformed": lambda m: m.update(arch="mlp"),
        "not a vtrust": lambda m: m.update(format="onnx"),
    }
    for message, change in cases.items():
        with pytest.raises(ModelFileError, match=message):
            load_model_bytes(_rewrite_metadata(raw, change))


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, tmp_path / "plain.safetensors")
    with pytest.raises(ModelFileError, match="not a vtrust model"):
        load_model(tmp_path / "plain.safetensors")


@settings(max_examples=25, deadline=None)
@given(
    arch=st.sampled_from(["mlp", "cnn", "softmax", "quad"]),
    channels=st.integers(1, 3),
    side=st.sampled_from([4, 8, 12]),
    width=st.integers(1, 9),
    classes=st.integers(2, 11),
)
def test_layer_plans_give_the_shapes_of_the_built_models(arch, channels, side, width, classes):
    """The torch-free plan is the zoo: its state-dict shapes are the built module's."""
    params = {
        "mlp": {"hidden": [width, width + 1]},
        "cnn": {"channels": [width, 2], "hidden": width},
        "softmax": {},
        "quad": {"channels": width, "hidden": width + 2},
    }[arch]
    model = build_model(arch, (channels, side, side), classes, params)
    built = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert state_shapes(arch, (channels, side, side), classes, model.spec.params) == built


def test_the_header_check_hashes_weights_as_model_sha256_and_needs_no_torch(model_file):
    raw = model_file.read_bytes()
    header = read_model_header(raw, "m")
    loaded = load_model_bytes(raw)
    assert header.metadata["weights_sha256"] == model_sha256(loaded.model)
    assert header.n_parameters == sum(p.numel() for p in loaded.model.parameters())
    probe = (
        "import sys; from pathlib import Path; from vtrust.models.header import read_model_header\n"
        f"read_model_header(Path({str(model_file)!r}).read_bytes())\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_header_check_refuses_tensors_that_are_not_the_architectures(model_file, tmp_path):
    """A file whose checksums are consistent (re-signed by a forger) but whose tensors
    are not those of its recorded architecture is refused before any model is built."""
    forged = _rewrite_metadata(  # claims other widths, re-signed
        model_file.read_bytes(), lambda meta: meta["arch"]["params"].update(hidden=[64, 64])
    )
    with pytest.raises(ModelFileError, match="do not fit architecture 'mlp'"):
        read_model_header(forged, "forged")
    with pytest.raises(ModelFileError, match="do not fit architecture 'mlp'"):
        load_model_bytes(forged, source="forged")
