"""Bring your own model and data through the command line: info, audit, attacks behind
defenses, watermark verification through the black box, removal on white boxes, and
bad input (one line, exit 2, nothing written)."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vtrust.cli import run

TFLITE = "tests/fixtures/digits_int8.tflite"
FAST_THIEF = Path(__file__).parent / "fixtures" / "random-uniform-fast.toml"  # a 150-step thief


def npz(byom):
    return f"npz:{byom['data']}"


def cli_json(capsys, argv, code=0):
    got = run(["-q", *argv, "--json"])
    captured = capsys.readouterr()
    assert got == code, captured.err
    return json.loads(captured.out) if code == 0 else captured.err


def test_info_on_every_format(byom, capsys):
    for name in ("torchscript", "export", "onnx", "state_dict"):
        extra = ["--input-shape", "3,8,8", "--arch-module", "byom_model:ResidualNet"]
        meta = cli_json(capsys, ["info", str(byom[name]), *(extra if name != "onnx" else [])])
        assert meta["white_box"] and meta["n_classes"] == 10 and meta["input"]["shape"] == [3, 8, 8]
    meta = cli_json(capsys, ["info", TFLITE])
    assert (
        meta["format"] == "tflite" and not meta["white_box"] and meta["input"]["layout"] == "NHWC"
    )
    assert run(["info", str(byom["torchscript"])]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_quick_audit_of_a_black_box_tflite_says_what_it_skipped(tmp_path, capsys):
    result = cli_json(
        capsys,
        [
            "audit",
            TFLITE,
            "--data",
            "digits",
            "--quick",
            "--attack",
            "random-uniform-2k",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result["ran"] == ["extraction", "proof"] and result["accuracy"] > 0.9
    proof = result["proof"]  # a black box, but a fully integer one: imported exactly
    assert proof["verified"] and proof["how"].startswith("imported exactly")
    assert proof["attacks"] and not any(row["accepted"] for row in proof["attacks"])
    assert "proof" not in result["skipped"] and "watermark" in result["skipped"]
    assert {p.name for p in (tmp_path / "r").iterdir()} == {
        "report.md",
        "report.json",
        "fidelity.png",
    }
    assert "Skipped" in (tmp_path / "r" / "report.md").read_text()


def test_audit_of_onnx_with_a_static_key_skips_nothing_it_can_run(byom, capsys):
    result = cli_json(
        capsys,
        [
            "audit",
            str(byom["onnx"]),
            "--data",
            npz(byom),
            "--quick",
            "--attack",
            "knockoff-attacker-400",
            "--budget",
            "100",
        ],
    )
    assert result["target"]["white_box"] and result["extraction"][0]["queries"] == 100
    proof = result["proof"]  # the residual CNN, quantised post-training from the graph
    assert proof["verified"] and proof["how"].startswith("quantised post-training")
    assert proof["int8_accuracy"] >= result["accuracy"] - 0.02
    assert not any(row["accepted"] for row in proof["attacks"])


def test_extraction_behind_a_detector_and_a_poisoning_defense(byom, capsys):
    for defense in ("prada-refuse", "mad-argmax"):
        result = cli_json(
            capsys,
            [
                "attack",
                "run",
                str(FAST_THIEF),
                "--target",
                str(byom["export"]),
                "--data",
                npz(byom),
                "--defense",
                defense,
                "--budget",
                "150",
                "--no-curve",
            ],
        )
        assert defense in result["defenses"] and result["queries"] <= 150


def test_removal_runs_on_white_boxes_and_refuses_black_boxes(byom, capsys):
    result = cli_json(
        capsys,
        ["attack", "run", "prune-global", "--target", str(byom["onnx"]), "--data", npz(byom)],
    )
    assert result["category"] == "removal" and len(result["curve"]) >= 2
    result = cli_json(
        capsys, ["attack", "run", "ftal", "--target", str(byom["torchscript"]), "--data", npz(byom)]
    )
    assert result["fidelity"] > 0.5
    err = cli_json(capsys, ["attack", "run", "ftal", "--target", TFLITE, "--data", "digits"], 2)
    assert "needs white-box weights" in err and err.count("\n") == 1


def test_dynamic_watermark_verifies_through_any_black_box(byom, tmp_path, capsys):
    from byom_model import ResidualNet

    from vtrust.data import load_dataset
    from vtrust.models import TrainConfig
    from vtrust.watermark.dynamic import DynamicWatermark, new_dynamic_key
    from vtrust.watermark.keys import save_key

    splits = load_dataset(npz(byom), seed=0)
    key = new_dynamic_key(splits, style="noise", triggers=60, seed=5)
    marked = ResidualNet()
    marked.load_state_dict(byom["module"].state_dict())
    DynamicWatermark(key, splits).embed(
        marked, splits.victim, TrainConfig(epochs=25, lr=2e-3, seed=0)
    )
    marked.eval()
    onnx_file = tmp_path / "marked.onnx"
    torch.onnx.export(
        marked,
        (torch.zeros(1, 3, 8, 8),),
        str(onnx_file),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    save_key(tmp_path / "key.json", key)
    owned = cli_json(
        capsys,
        [
            "watermark",
            "verify",
            "--model",
            str(onnx_file),
            "--key",
            str(tmp_path / "key.json"),
            "--data",
            npz(byom),
        ],
    )
    assert owned["owned"], owned
    err = run(
        [
            "-q",
            "watermark",
            "verify",
            "--model",
            str(byom["onnx"]),
            "--key",
            str(tmp_path / "key.json"),
            "--data",
            npz(byom),
            "--json",
        ]
    )
    assert err == 1 and not json.loads(capsys.readouterr().out)["owned"]


def test_folder_data_rgb_and_grey_and_a_moved_folder(tmp_path, capsys):
    from byom_model import rgb_digits

    x, y = rgb_digits()
    for mode in ("RGB", "L"):
        root = tmp_path / mode
        for i in range(200):
            folder = root / f"class{y[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).convert(mode).save(folder / f"{i}.png")
    model = tmp_path / "grey.vtm"
    assert (
        run(
            [
                "-q",
                "train",
                "--dataset",
                f"folder:{tmp_path / 'L'}",
                "--arch",
                "softmax",
                "--epochs",
                "2",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    shutil.move(tmp_path / "L", tmp_path / "moved")
    err = cli_json(capsys, ["audit", str(model), "--quick", "--attack", "random-uniform-2k"], 2)
    assert "no such folder" in err
    result = cli_json(
        capsys,
        [
            "audit",
            str(model),
            "--quick",
            "--attack",
            "random-uniform-2k",
            "--budget",
            "50",
            "--data",
            f"folder:{tmp_path / 'moved'}",
        ],
    )
    assert result["target"]["input"]["shape"] == [1, 8, 8]
    # an RGB folder stays in colour for a 3-channel model, and turns grey for a 1-channel one
    from vtrust.data import load_dataset

    rgb = load_dataset(f"folder:{tmp_path / 'RGB'}", input_shape=(3, 8, 8))
    assert rgb.input_shape == (3, 8, 8) and not np.allclose(rgb.test.x[:, 0], rgb.test.x[:, 1])
    assert load_dataset(f"folder:{tmp_path / 'RGB'}", input_shape=(1, 4, 4)).input_shape == (
        1,
        4,
        4,
    )


def test_changed_data_are_noticed(tmp_path, capsys):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((80, 8, 8)).astype(np.float32), y=np.arange(80) % 4)
    model = tmp_path / "m.vtm"
    assert (
        run(
            [
                "-q",
                "train",
                "--dataset",
                f"npz:{path}",
                "--arch",
                "softmax",
                "--epochs",
                "1",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    np.savez(path, x=rng.random((80, 8, 8)).astype(np.float32), y=np.arange(80) % 4)
    err = cli_json(capsys, ["audit", str(model), "--quick"], 2)
    assert "changed since" in err and "pass --data" in err


def _corrupt_onnx(byom, tmp_path):
    raw = byom["onnx"].read_bytes()
    path = tmp_path / "bad.onnx"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _rank2_onnx(byom, tmp_path):
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(torch.nn.Linear(64, 10), (torch.zeros(1, 64),), str(path), dynamo=False)
    return path


def _corrupt_tflite(byom, tmp_path):
    raw = Path(TFLITE).read_bytes()
    path = tmp_path / "bad.tflite"
    path.write_bytes(raw[:200])
    return path


def _object_npz(byom, tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([np.zeros((8, 8)), "text"], dtype=object), y=np.arange(2))
    return f"npz:{path}"


def _non_image_folder(byom, tmp_path):
    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / c / "0.png")
    (root / "b" / "notes.txt").write_text("not an image")
    return f"folder:{root}"


def _labels_out_of_range(byom, tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((60, 8, 8, 3), np.uint8), y=np.arange(60) % 15)
    return f"npz:{path}"


def _mismatched(byom, tmp_path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, x=np.zeros((60, 8, 8, 3), np.uint8), y=np.arange(59) % 10)
    return f"npz:{path}"


BAD_MODELS = {
    "corrupted ONNX": (_corrupt_onnx, "not a valid ONNX model"),
    "wrong input rank": (_rank2_onnx, "rank 2"),
    "corrupted TFLite": (_corrupt_tflite, "LiteRT cannot load"),
    "pickled module": (lambda b, t: b["pickled"], "never unpickles"),
}
BAD_DATA = {
    "object array": (_object_npz, "not a plain-array"),
    "non-image in a class folder": (_non_image_folder, "notes.txt: not an image"),
    "labels out of range": (_labels_out_of_range, "up to 14 but the model has 10"),
    "mismatched shapes": (_mismatched, "60 images but 59 labels"),
}


@pytest.mark.parametrize("case", [*BAD_MODELS, *BAD_DATA])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(byom, tmp_path, capsys, case):
    if case in BAD_MODELS:
        make, message = BAD_MODELS[case]
        model, data = make(byom, tmp_path), npz(byom)
    else:
        make, message = BAD_DATA[case]
        model, data = byom["onnx"], make(byom, tmp_path)
    out = tmp_path / "report"
    code = run(["audit", str(model), "--data", data, "--quick", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_data_file_given_as_a_model_is_named(byom, capsys):
    assert run(["info", str(byom["data"])]) == 2
    assert "data file, not a model" in capsys.readouterr().err
    with zipfile.ZipFile(byom["data"]) as archive:
        assert archive.namelist()  # it is a zip, told apart from torch archives by content


@pytest.mark.parametrize(
    "argv",
    [
        ["watermark", "embed", "--kind", "dynamic", "--model", "M", "--out", "O/m.vtm",
         "--key-out", "O/k.json"],
        ["watermark", "fingerprint", "--model", "M", "--users", "a,b", "--registry", "O/r.db",
         "--out-dir", "O"],
        ["quantize", "--model", "M", "--circuit", "quad-digits", "--out", "O/q.vtm"],
        ["enclave", "run", "--model", "M", "--split", "all"],
    ],
    ids=["embed", "fingerprint", "quantize", "enclave"],
)  # fmt: skip
@pytest.mark.parametrize("model", ["tflite", "onnx"])
def test_weight_changing_operations_say_why_they_cannot_run(byom, tmp_path, capsys, argv, model):
    path = TFLITE if model == "tflite" else str(byom["onnx"])
    out = tmp_path / "out"
    out.mkdir()  # outputs go into existing folders; nothing may be written there
    argv = [path if a == "M" else a.replace("O", str(out), 1) if a.startswith("O") else a
            for a in argv]  # fmt: skip
    assert run([*argv, "--data", "digits" if model == "tflite" else npz(byom)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("vtrust model file" in err or "white-box" in err), err
    assert ("black box" in err) == (model == "tflite")
    assert not any(out.iterdir())


def test_a_static_key_on_a_black_box_is_refused(tmp_path, capsys):
    from vtrust.models.recipes import train_model
    from vtrust.watermark.keys import save_key
    from vtrust.watermark.static import new_static_key

    key = new_static_key(train_model("digits", "softmax", epochs=1).model, bits=32, seed=1)
    save_key(tmp_path / "k.json", key)
    code = run(["watermark", "verify", "--model", TFLITE, "--key", str(tmp_path / "k.json"),
                "--data", "digits"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "static watermark verification needs white-box weights" in err


def test_the_matrix_runs_on_an_onnx_target(byom, tmp_path, capsys):
    result = cli_json(capsys, ["evaluate", "--target", str(byom["onnx"]), "--data", npz(byom),
                               "--defense", "none", "--attack", "random-uniform-2k",
                               "--budget", "60", "--out", str(tmp_path / "m")])  # fmt: skip
    assert result["cells"] == 1 and (tmp_path / "m" / "report.md").exists()


def test_the_mnist_sized_litert_fixture():
    from vtrust.targets import load_target

    target = load_target("tests/fixtures/mnist_int8.tflite")
    assert target.input_shape == (1, 28, 28) and target.n_classes == 10


@pytest.mark.parametrize(
    "option, value, message",
    [("--input-shape", "3,8", "expected 3 numbers"), ("--value-range", "0,x", "comma-separated"),
     ("--arch-module", "nocolon", "pkg.module:Class")],
)  # fmt: skip
def test_malformed_model_options_are_one_line_exit_2(
    byom, tmp_path, capsys, option, value, message
):
    out = tmp_path / "r"
    code = run(["audit", str(byom["state_dict"]), "--data", npz(byom), "--quick", option, value,
                "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not out.exists()
