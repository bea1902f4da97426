"""The user's own data: ``npz:FILE`` and ``folder:DIR`` specs, their validation, and
specs recorded so that they resolve from any working directory."""

import numpy as np
import pytest
from PIL import Image

from vtrust.cli import run
from vtrust.data import load_dataset
from vtrust.data.datasets import canonical_spec
from vtrust.errors import DatasetError


def labelled(n=80, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8)).astype(np.float32), np.arange(n) % classes


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC-uint8", "NCHW-rgb"])
def test_npz_layouts_become_nchw_in_0_1(tmp_path, layout):
    x, y = labelled()
    if layout == "NCHW":
        x = x[:, None]
    elif layout == "NHWC-uint8":
        x = (x[..., None] * 255).astype(np.uint8)
    elif layout == "NCHW-rgb":
        x = np.repeat(x[:, None], 3, axis=1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    splits = load_dataset(f"npz:{tmp_path / 'd.npz'}", seed=0)
    channels = 3 if layout == "NCHW-rgb" else 1
    assert splits.input_shape == (channels, 8, 8) and splits.n_classes == 4
    total = len(splits.victim) + len(splits.attacker) + len(splits.test)
    assert total == 80 and splits.victim.x.min() >= 0 and splits.victim.x.max() <= 1


@pytest.mark.parametrize(
    ("name", "arrays", "message"),
    [
        ("object", {"x": np.array([None] * 80, dtype=object), "y": np.arange(80) % 4}, "npz"),
        ("nan", {"x": np.full((80, 8, 8), np.nan, np.float32), "y": np.arange(80) % 4}, "NaN"),
        ("range", {"x": np.full((80, 8, 8), 2.0, np.float32), "y": np.arange(80) % 4}, "[0, 1]"),
        ("labels", {"x": np.zeros((80, 8, 8), np.float32), "y": -np.ones(80)}, "non-negative"),
        ("count", {"x": np.zeros((80, 8, 8), np.float32), "y": np.arange(79) % 4}, "79 labels"),
        ("rank", {"x": np.zeros((80, 64), np.float32), "y": np.arange(80) % 4}, "shape"),
        ("keys", {"images": np.zeros((80, 8, 8), np.float32)}, "no array 'x'"),
        ("few", {"x": np.zeros((9, 8, 8), np.float32), "y": np.arange(9) % 4}, "at least 4"),
    ],
)
def test_bad_npz_files_are_one_line_errors(tmp_path, capsys, name, arrays, message):
    np.savez(tmp_path / f"{name}.npz", **arrays)
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(f"npz:{tmp_path / name}.npz")
    out = tmp_path / "m.st"
    code = run(["train", "--arch", "mlp", "--dataset", f"npz:{tmp_path / name}.npz",
                "--epochs", "1", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not out.exists()


def write_folder(root, mode, sizes=((8, 8),)):
    rng = np.random.default_rng(1)
    for c in ("cat", "dog", "eel"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            size = sizes[i % len(sizes)]
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / c / f"{i}.png")


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_image_folders_grey_and_rgb(tmp_path, mode):
    write_folder(tmp_path / "imgs", mode, sizes=((8, 8), (8, 8), (10, 6)))
    splits = load_dataset(f"folder:{tmp_path / 'imgs'}")
    assert splits.input_shape == ((1 if mode == "L" else 3), 8, 8)  # resized to the common size
    assert splits.n_classes == 3 and len(splits.victim) == 12


def test_a_non_image_in_a_class_folder_is_named(tmp_path):
    write_folder(tmp_path / "imgs", "L")
    (tmp_path / "imgs" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="notes.txt: not an image"):
        load_dataset(f"folder:{tmp_path / 'imgs'}")
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


def test_specs_are_recorded_absolute(tmp_path, monkeypatch):
    x, y = labelled()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    monkeypatch.chdir(tmp_path)
    assert canonical_spec("npz:d.npz") == f"npz:{tmp_path / 'd.npz'}"
    assert load_dataset("npz:d.npz").spec == f"npz:{tmp_path / 'd.npz'}"
    assert canonical_spec("digits") == "digits" and canonical_spec("synthetic:3") == "synthetic:3"


def test_a_model_trained_on_a_relative_npz_is_usable_from_another_folder(
    tmp_path, monkeypatch, capsys
):
    x, y = labelled(n=120)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x=x, y=y)
    monkeypatch.chdir(tmp_path / "data")
    assert run(["-q", "train", "--arch", "mlp", "--dataset", "npz:d.npz", "--epochs", "1",
                "--out", str(tmp_path / "m.st")]) == 0  # fmt: skip
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run(["-q", "enclave", "run", "--model", "m.st", "--split", "none", "--json"]) == 0
    assert '"examples": 30' in capsys.readouterr().out


def test_data_overrides_a_moved_dataset(tmp_path, capsys):
    x, y = labelled(n=120)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    model = str(tmp_path / "m.st")
    assert run(["-q", "train", "--arch", "mlp", "--dataset", f"npz:{tmp_path / 'd.npz'}",
                "--epochs", "1", "--out", model]) == 0  # fmt: skip
    (tmp_path / "moved").mkdir()
    (tmp_path / "d.npz").rename(tmp_path / "moved" / "d.npz")
    capsys.readouterr()
    command = ["-q", "enclave", "run", "--model", model, "--split", "none", "--json"]
    assert run(command) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1
    assert run([*command, "--data", f"npz:{tmp_path / 'moved' / 'd.npz'}"]) == 0
    assert '"examples": 30' in capsys.readouterr().out
