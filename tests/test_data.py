import gzip
import struct

import numpy as np
import pytest

from vtrust.data import load_dataset, load_idx_dir, natural_image_pool, parse_idx, read_idx
from vtrust.errors import DatasetError


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def write_mnist(folder, n=40, rows=6, cols=6, prefix="toy", gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    for name, arr in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(arr)
        (folder / (name + suffix)).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


def test_splits_are_disjoint_stratified_and_seeded(digits):
    sizes = [len(digits.victim), len(digits.attacker), len(digits.test)]
    assert sum(sizes) == 1797
    assert abs(sizes[0] / 1797 - 0.5) < 0.01 and abs(sizes[1] - sizes[2]) <= 1
    rows = [set(map(bytes, s.x.reshape(len(s), -1))) for s in (digits.victim, digits.test)]
    assert len(rows[0] & rows[1]) < 5  # digits has a handful of duplicate images, no more
    for split in (digits.victim, digits.attacker, digits.test):
        share = np.bincount(split.y, minlength=10) / len(split)
        assert np.all(np.abs(share - 0.1) < 0.02)
        assert split.x.dtype == np.float32 and split.x.min() >= 0 and split.x.max() <= 1
    again = load_dataset("digits", seed=0)
    assert np.array_equal(again.test.y, digits.test.y)
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.test.x, digits.test.x)


def test_synthetic_is_seeded():
    a, b, c = (load_dataset(s, seed=0) for s in ("synthetic", "synthetic", "synthetic:3"))
    assert np.array_equal(a.victim.x, b.victim.x)
    assert not np.array_equal(a.victim.x, c.victim.x)
    assert a.input_shape == (1, 8, 8) and a.n_classes == 10


@pytest.mark.parametrize("spec", ["mnist", "digits:3", "synthetic:x", "idx:", "idx:/no/such/dir"])
def test_unknown_dataset_spec(spec):
    with pytest.raises(DatasetError):
        load_dataset(spec)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    x, y = load_idx_dir(tmp_path)
    assert np.array_equal(x, images) and np.array_equal(y, labels)
    splits = load_dataset(f"idx:{tmp_path}", seed=0)
    assert splits.input_shape == (1, 6, 6)
    assert len(splits.victim) + len(splits.attacker) + len(splits.test) == 40


def test_idx_concatenates_pairs(tmp_path):
    write_mnist(tmp_path, n=20, prefix="a")
    write_mnist(tmp_path, n=30, prefix="b", seed=1)
    x, y = load_idx_dir(tmp_path)
    assert x.shape == (50, 6, 6) and y.shape == (50,)


def test_parse_idx_other_types():
    arr = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    assert np.array_equal(parse_idx(idx_bytes(arr, 0x0C)), arr)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"\x01" + d[1:], "magic"),
        (lambda d: d[:2] + b"\x07" + d[3:], "element type"),
        (lambda d: d[:-1], "need"),
        (lambda d: d + b"\x00", "need"),
        (lambda d: d[:6], "truncated"),
        (lambda d: d[:3], "too short"),
        (lambda d: d[:3] + b"\x00" + d[4:], "zero dimensions"),
        (lambda d: d[:4] + struct.pack(">I", 2**31) + d[8:], "implausibly"),
    ],
)
def test_malformed_idx(tmp_path, mutate, message):
    write_mnist(tmp_path)
    path = tmp_path / "toy-images-idx3-ubyte"
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(DatasetError, match=message):
        read_idx(path)
    with pytest.raises(DatasetError):
        load_idx_dir(tmp_path)


def test_idx_folder_problems(tmp_path):
    with pytest.raises(DatasetError, match="no .*images"):
        load_idx_dir(tmp_path)
    write_mnist(tmp_path)
    (tmp_path / "toy-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="labels"):
        load_idx_dir(tmp_path)
    write_mnist(tmp_path, n=40)
    (tmp_path / "toy-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(39, np.uint8)))
    with pytest.raises(DatasetError, match="40 images but"):
        load_idx_dir(tmp_path)
    (tmp_path / "toy-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((40, 1), np.uint8)))
    with pytest.raises(DatasetError, match="1 dimension"):
        load_idx_dir(tmp_path)


def test_corrupted_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "toy-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetError, match="gzip"):
        load_idx_dir(tmp_path)


@pytest.mark.mnist
def test_shared_mnist_files(mnist_dir):
    splits = load_dataset(f"idx:{mnist_dir}", seed=0)
    assert splits.input_shape == (1, 28, 28) and splits.n_classes == 10
    assert len(splits.victim) == 5000 and len(splits.attacker) == 2500 and len(splits.test) == 2500
    assert splits.test.x.min() >= 0.0 and splits.test.x.max() == 1.0


def test_natural_image_pool():
    pool = natural_image_pool(50, (1, 8, 8), seed=3)
    assert pool.shape == (50, 1, 8, 8) and pool.dtype == np.float32
    assert pool.min() >= 0 and pool.max() <= 1
    assert np.array_equal(pool, natural_image_pool(50, (1, 8, 8), seed=3))
    assert not np.array_equal(pool, natural_image_pool(50, (1, 8, 8), seed=4))
    assert natural_image_pool(4, (3, 28, 28), seed=0).shape == (4, 3, 28, 28)
    assert len({p.tobytes() for p in pool}) == 50


def test_take_fraction(digits):
    part = digits.attacker.take(0.1, seed=0)
    assert len(part) == round(0.1 * len(digits.attacker))
    assert set(np.unique(part.y)) == set(range(10))
    assert len(digits.attacker.take(0.001, seed=0)) == 1
    with pytest.raises(DatasetError):
        digits.attacker.take(0, seed=0)
