"""Targets: any model format as the model under audit (Python API)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vtrust
from vtrust.errors import BlackBoxOnly, DatasetError, InputError, ModelFileError
from vtrust.oracle import Oracle
from vtrust.targets import InputSpec, LoadOptions, load_target, load_target_and_splits
from vtrust.targets.onnx_files import check_conversion
from vtrust.targets.sniff import sniff

TFLITE = "tests/fixtures/digits_int8.tflite"


def test_formats_are_told_by_content_not_by_name(byom, tmp_path):
    expected = {
        "torchscript": "torchscript",
        "export": "torch-export",
        "onnx": "onnx",
        "state_dict": "torch-save",
        "pickled": "torch-save",
        "data": "npz",
    }
    for name, kind in expected.items():
        renamed = tmp_path / f"{name}.bin"
        shutil.copy(byom[name], renamed)
        assert sniff(renamed.read_bytes()) == kind, name
    assert sniff(Path(TFLITE).read_bytes()) == "tflite"
    assert sniff(b"\x80\x04\x95 pickled") == "pickle"


def test_every_format_answers_like_the_module(byom):
    reference = vtrust.wrap(byom["module"], input_shape=(3, 8, 8))
    x = np.random.default_rng(1).random((20, 3, 8, 8)).astype(np.float32)
    expected = reference.predict_proba(x)
    options = LoadOptions(input_shape=(3, 8, 8), arch_module="byom_model:ResidualNet")
    for name in ("torchscript", "export", "onnx", "state_dict"):
        target = load_target(byom[name], options if name != "onnx" else LoadOptions())
        assert target.white_box and target.n_classes == 10, name
        np.testing.assert_allclose(target.predict_proba(x), expected, atol=1e-5, err_msg=name)


def test_onnx_conversion_is_checked_against_onnxruntime(byom):
    target, splits = load_target_and_splits(byom["onnx"], f"npz:{byom['data']}")
    assert target.white_box and target.provenance["conversion_checked"]
    assert target.provenance["conversion_max_abs_diff"] < 1e-4
    with torch.no_grad():  # a converter that got a weight wrong must not be trusted
        target.module.inner.weights[0].mul_(1.5)
    target.provenance["conversion_checked"] = False
    check_conversion(target, splits.victim.x)
    assert not target.white_box and "differs from onnxruntime" in target.white_box_reason
    with pytest.raises(BlackBoxOnly, match="needs white-box weights"):
        target.require_module("a removal attack")


def test_tflite_int8_is_a_black_box_with_its_quantisation_applied():
    target, splits = load_target_and_splits(TFLITE, "digits")
    assert target.provenance["input_type"] == "int8" and target.spec.layout == "NHWC"
    assert target.outputs == "probabilities" and not target.white_box
    assert (target.predict(splits.test.x) == splits.test.y).mean() > 0.9
    probs = target.predict_proba(splits.test.x[:7])  # an odd batch: the input is resized
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_a_state_dict_needs_its_class_and_a_pickle_is_refused(byom):
    with pytest.raises(ModelFileError, match="--arch-module"):
        load_target(byom["state_dict"], LoadOptions(input_shape=(3, 8, 8)))
    with pytest.raises(ModelFileError, match="never unpickles.*TorchScript"):
        load_target(
            byom["pickled"],
            LoadOptions(input_shape=(3, 8, 8), arch_module="byom_model:ResidualNet"),
        )
    with pytest.raises(ModelFileError, match="do not fit"):
        load_target(
            byom["state_dict"], LoadOptions(input_shape=(1, 8, 8), arch_module="torch.nn:Identity")
        )


def test_wrap_predict_is_a_black_box_the_oracle_serves():
    weights = np.random.default_rng(0).normal(size=(64, 4))

    def predict(batch):
        return batch.reshape(len(batch), -1) @ weights

    target = vtrust.wrap_predict(predict, input_shape=(1, 8, 8), n_classes=4)
    assert not target.white_box and target.outputs == "logits"
    oracle = Oracle(target)
    answers = oracle.query(np.random.default_rng(2).random((300, 1, 8, 8)))
    assert answers.shape == (300, 4) and oracle.total_queries == 300
    with pytest.raises(BlackBoxOnly, match="only a prediction function"):
        target.require_module("static watermark embedding")
    with pytest.raises(InputError, match="not 5"):
        vtrust.wrap_predict(predict, input_shape=(1, 8, 8), n_classes=5)


def test_a_softmax_ending_module_is_detected_and_given_logits():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.Softmax(1))
    target = vtrust.wrap(net, input_shape=(1, 8, 8))
    assert target.provenance["model_outputs"] == "probabilities"
    x = np.random.default_rng(3).random((5, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(target.predict_proba(x), expected, atol=1e-6)


def test_data_must_fit_the_target(byom, tmp_path):
    grey = tmp_path / "grey.npz"
    np.savez(grey, x=np.zeros((40, 8, 8), np.uint8), y=np.arange(40) % 10)
    with pytest.raises(DatasetError, match=r"\(1, 8, 8\).*takes \(3, 8, 8\)"):
        load_target_and_splits(byom["onnx"], f"npz:{grey}")
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.zeros((48, 8, 8, 3), np.uint8), y=np.arange(48) % 12)
    with pytest.raises(DatasetError, match="up to 11 but the model has 10"):
        load_target_and_splits(byom["onnx"], f"npz:{labels}")
    with pytest.raises(DatasetError, match="pass --data"):
        load_target_and_splits(byom["onnx"])


def test_the_users_own_splits_are_kept(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "splits.npz"
    x_test = rng.random((30, 8, 8)).astype(np.float32)
    np.savez(
        path,
        x_train=rng.random((90, 8, 8)).astype(np.float32),
        y_train=np.arange(90) % 3,
        x_test=x_test,
        y_test=np.arange(30) % 3,
    )
    from vtrust.data import load_dataset

    splits = load_dataset(f"npz:{path}", seed=4)
    assert splits.user_splits and np.array_equal(splits.test.x[:, 0], x_test)
    assert len(splits.victim) == 60 and len(splits.attacker) == 30
    joined = {a.tobytes() for a in splits.victim.x} & {a.tobytes() for a in splits.attacker.x}
    assert not joined


@settings(max_examples=40, deadline=None)
@given(
    layout=st.sampled_from(["NCHW", "NHWC"]),
    lo=st.floats(-5, 5),
    width=st.floats(0.5, 300),
    mean=st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    std=st.lists(st.floats(0.1, 3), min_size=3, max_size=3),
)
def test_the_numpy_and_torch_preprocessing_agree(layout, lo, width, mean, std):
    spec = InputSpec((3, 4, 5), layout, (lo, lo + width), tuple(mean), tuple(std))
    x = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    by_numpy = spec.to_model(x)
    by_torch = spec.to_model_tensor(torch.from_numpy(x)).numpy()
    assert by_numpy.shape == (2, *spec.model_shape)
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-5, atol=1e-4)
    pixel = (lo + width * x[0, 1, 2, 3] - mean[1]) / std[1]
    got = by_numpy[0, 1, 2, 3] if layout == "NCHW" else by_numpy[0, 2, 3, 1]
    assert got == pytest.approx(pixel, rel=1e-4, abs=1e-3)


def test_the_users_splits_from_two_files(tmp_path):
    from vtrust.data import load_dataset

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "train.npz", x=rng.random((60, 8, 8)).astype(np.float32),
             y=np.arange(60) % 3)  # fmt: skip
    x_test = rng.random((15, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "test.npz", x=x_test, y=np.arange(15) % 3)
    splits = load_dataset(f"npz:{tmp_path / 'train.npz'}+{tmp_path / 'test.npz'}")
    assert splits.user_splits and np.array_equal(splits.test.x[:, 0], x_test)
    assert len(splits.victim) + len(splits.attacker) == 60


def test_float_litert_models_run_unquantised():
    target, splits = load_target_and_splits("tests/fixtures/digits_float.tflite", "digits")
    assert target.provenance["input_type"] == "float32" and target.outputs == "probabilities"
    assert (target.predict(splits.test.x) == splits.test.y).mean() > 0.9


def test_a_missing_extra_is_named(byom, monkeypatch):
    import sys

    from vtrust.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra, match=r"pip install 'vtrust\[onnx\]'"):
        load_target(byom["onnx"])
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingExtra, match=r"vtrust\[litert\]"):
        load_target(TFLITE)


def test_npz_arrays_the_user_names_and_folder_splits(tmp_path):
    from PIL import Image

    from vtrust.data import load_dataset

    rng = np.random.default_rng(2)
    np.savez(tmp_path / "named.npz", images=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
             labels=np.arange(40) % 4)  # fmt: skip
    named = load_dataset(f"npz:{tmp_path / 'named.npz'}?x=images&y=labels")
    assert named.n_classes == 4 and named.spec.endswith("?x=images&y=labels")
    for part, count in (("train", 12), ("test", 4)):
        for label in ("cat", "dog"):
            folder = tmp_path / "imgs" / part / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("L", (6, 6), color=40 * i).save(folder / f"{i}.png")
    splits = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert splits.user_splits and len(splits.test) == 8 and len(splits.victim) == 16
    with pytest.raises(DatasetError, match="no array 'pixels'"):
        load_dataset(f"npz:{tmp_path / 'named.npz'}?x=pixels&y=labels")
