"""Shared fixtures: the digits splits, a quickly trained model, the shared MNIST folder."""

from __future__ import annotations

import os

# Same reproducibility settings as the CLI (they must precede torch's import).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.models import TrainConfig, build_model, fit  # noqa: E402

progress.set_enabled(False)

MNIST_DIR = Path(__file__).resolve().parents[1] / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def small_mlp(digits):
    """An MLP trained for a few epochs (about 0.9 accuracy): enough to have behaviour."""
    model = build_model("mlp", digits.input_shape, digits.n_classes, seed=0)
    fit(model, digits.victim, TrainConfig(epochs=8, lr=3e-3, seed=0))
    return model


@pytest.fixture(scope="session")
def small_cnn(digits):
    """A CNN trained for a few epochs: conv, pooling and linear layers with behaviour."""
    model = build_model("cnn", digits.input_shape, digits.n_classes, seed=0)
    fit(model, digits.victim, TrainConfig(epochs=6, lr=3e-3, seed=0))
    return model.eval()


@pytest.fixture(scope="session")
def mlp_victim(digits):
    """The demo's default MLP victim (seed 0, tuned settings)."""
    from vtrust.models.recipes import train_model

    return train_model(digits, "mlp", seed=0).model


@pytest.fixture(scope="session")
def softmax_victim(digits):
    from vtrust.models.recipes import train_model

    return train_model(digits, "softmax", seed=0).model


@pytest.fixture(scope="session")
def quad_files(tmp_path_factory):
    """A quadratic model file trained by the CLI and its quantisation for the digits
    circuit: (folder, raw model file, quantised model file)."""
    from vtrust.cli import run

    d = tmp_path_factory.mktemp("quad")
    raw, tuned = d / "quad.st", d / "quad-q.st"
    assert run(["-q", "train", "--arch", "quad", "--epochs", "10", "--out", str(raw)]) == 0
    assert run(["-q", "quantize", "--model", str(raw), "--circuit", "quad-digits",
                "--epochs", "2", "--out", str(tuned)]) == 0  # fmt: skip
    return d, raw, tuned


@pytest.fixture(scope="session")
def mnist_dir():
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("shared MNIST files are not present")
    return MNIST_DIR


@pytest.fixture(scope="session")
def byom(tmp_path_factory):
    """A user's own (non-zoo) model in every format vtrust reads, and its RGB data
    (``tests/byom_model.py``)."""
    from byom_model import build

    return build(tmp_path_factory.mktemp("byom"))
