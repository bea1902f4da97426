"""Datasets: the embedded ones (digits, synthetic), the user's own (IDX folders, ``.npz``
arrays, image folders), and the three splits.

Every dataset is held as ``float32`` images of shape (N, C, H, W) scaled to [0, 1] and
``int64`` labels. It is always handed out as three seeded, stratified, disjoint splits:

* ``victim`` (50 %): the owner's training data;
* ``attacker`` (25 %): in-distribution data an attacker may hold (also used by
  fine-tuning removal attacks);
* ``test`` (25 %): held out for every accuracy and fidelity figure.

Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from vtrust.data.files import folder_parts, npz_parts
from vtrust.data.idx import load_idx_dir
from vtrust.errors import DatasetError


@dataclass(frozen=True)
class Dataset:
    """A labelled set of images.

    Attributes:
        x: ``float32`` array (N, C, H, W) with values in [0, 1].
        y: ``int64`` array (N,) with values in ``range(n_classes)``.
        n_classes: number of classes of the task (not only those present in ``y``).
        name: where the data came from, e.g. ``"digits/victim"``.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise DatasetError(f"{self.name}: images must have shape (N, C, H, W)")
        if len(self.x) != len(self.y):
            raise DatasetError(f"{self.name}: {len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: np.ndarray, name: str | None = None) -> Dataset:
        """The samples at ``indices`` (a new dataset; the arrays are copied)."""
        return Dataset(self.x[indices], self.y[indices], self.n_classes, name or self.name)

    def take(self, fraction: float, *, seed: int) -> Dataset:
        """A seeded random ``fraction`` of this dataset (at least one sample), stratified
        by class whenever every class can be represented."""
        if not 0 < fraction <= 1:
            raise DatasetError(f"fraction must be in (0, 1], got {fraction}")
        n = max(1, int(round(fraction * len(self))))
        if n >= len(self):
            return self
        try:
            keep, _ = train_test_split(
                np.arange(len(self)), train_size=n, stratify=self.y, random_state=seed
            )
        except ValueError:  # too few samples per class to stratify
            keep = np.random.default_rng(seed).permutation(len(self))[:n]
        return self.subset(np.sort(keep), f"{self.name}[{fraction:g}]")


@dataclass(frozen=True)
class Splits:
    """The three disjoint splits of one dataset, made from ``spec`` with ``seed``.

    ``digest`` is :func:`data_digest` of everything the spec loaded (a model file records
    it, so reloading notices data that changed); ``user_splits`` says the test split (and
    perhaps the attacker's) came from the user instead of vtrust's seeded cut.
    """

    victim: Dataset
    attacker: Dataset
    test: Dataset
    spec: str
    seed: int
    digest: str = ""
    user_splits: bool = False

    @property
    def n_classes(self) -> int:
        return self.victim.n_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.victim.input_shape


SPLIT_FRACTIONS = {"victim": 0.50, "attacker": 0.25, "test": 0.25}


def _digits() -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    return x, bunch.target.astype(np.int64), 10


def _synthetic(gen_seed: int, n: int = 2400, n_classes: int = 10) -> tuple[np.ndarray, ...]:
    """Seeded Gaussian classes around smooth random 8×8 prototypes, clipped to [0, 1]."""
    rng = np.random.default_rng(gen_seed)
    coarse = rng.uniform(0.0, 1.0, size=(n_classes, 4, 4))
    prototypes = coarse.repeat(2, axis=1).repeat(2, axis=2)  # smooth 8×8 blocks
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    x = prototypes[y] + rng.normal(0.0, 0.25, size=(n, 8, 8))
    x = np.clip(x, 0.0, 1.0).astype(np.float32)[:, None, :, :]
    return x, y.astype(np.int64), n_classes


def _idx(folder: str) -> tuple[np.ndarray, np.ndarray, int]:
    images, labels = load_idx_dir(folder)
    if len(labels) == 0:
        raise DatasetError(f"{folder}: the IDX files hold no samples")
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    n_classes = int(labels.max()) + 1
    return x, labels, max(n_classes, 2)


Parts = dict[str, tuple[np.ndarray, np.ndarray]]


def _npz_spec(arg: str) -> tuple[Path, str, str]:
    """``FILE`` or ``FILE?x=KEY&y=KEY`` (the arrays to read)."""
    path, _, query = arg.partition("?")
    keys = {"x": "x", "y": "y"}
    for item in filter(None, query.split("&")):
        name, eq, value = item.partition("=")
        if name not in keys or not eq or not value:
            raise DatasetError(f"npz option {item!r}: expected x=KEY or y=KEY")
        keys[name] = value
    return Path(path).expanduser(), keys["x"], keys["y"]


def load_parts(spec: str, shape: tuple[int, int, int] | None = None) -> tuple[Parts, int]:
    """The labelled parts of the dataset ``spec`` names and its class count: ``{"all":
    (x, y)}``, or the user's own ``train``/``test`` (/``attacker``) splits.

    ``spec`` is ``digits``, ``synthetic`` (generator seed 0), ``synthetic:SEED``,
    ``idx:DIR`` (a folder of MNIST-format IDX files), ``npz:FILE`` (arrays ``x`` and
    ``y``, or ``x_train``/``y_train``/``x_test``/``y_test``; ``npz:FILE?x=KEY&y=KEY``
    names other arrays; ``npz:TRAIN+TEST`` takes the user's splits from two files) or
    ``folder:DIR`` (one sub-folder of images per class, or ``train/`` and ``test/``
    folders of them): see :mod:`vtrust.data.files`. Image
    folders are resized to ``shape`` (C, H, W) when it is given.
    """
    kind, _, arg = spec.partition(":")
    if kind == "digits" and not arg:
        x, y, n = _digits()
    elif kind == "synthetic":
        try:
            gen_seed = int(arg) if arg else 0
        except ValueError:
            raise DatasetError(f"synthetic dataset seed must be an integer, got {arg!r}") from None
        x, y, n = _synthetic(gen_seed)
    elif kind == "idx" and arg:
        x, y, n = _idx(str(Path(arg).expanduser()))
    elif kind == "npz" and "+" in arg:  # the user's splits in separate files
        train, _, test = arg.partition("+")
        parts = {}
        for name, part in (("train", train), ("test", test)):
            (loaded,) = npz_parts(*_npz_spec(part)).values()
            parts[name] = loaded
        if parts["train"][0].shape[1:] != parts["test"][0].shape[1:]:
            raise DatasetError(f"{spec}: train and test images have different shapes")
        return parts, _class_count(parts)
    elif kind == "npz" and arg:
        parts = npz_parts(*_npz_spec(arg))
        return parts, _class_count(parts)
    elif kind == "folder" and arg:
        parts = folder_parts(Path(arg).expanduser(), shape)
        return parts, _class_count(parts)
    else:
        raise DatasetError(
            f"unknown dataset {spec!r}; expected digits, synthetic[:SEED], idx:DIR, npz:FILE "
            "or folder:DIR"
        )
    return {"all": (x, y)}, n


def _class_count(parts: Parts) -> int:
    top = max((int(y.max()) for _, y in parts.values() if len(y)), default=0)
    return max(top + 1, 2)


def load_arrays(spec: str) -> tuple[np.ndarray, np.ndarray, int]:
    """All samples of the dataset ``spec`` names, splits joined: ``(x, y, n_classes)``
    (see :func:`load_parts`)."""
    parts, n_classes = load_parts(spec)
    return (
        np.concatenate([p[0] for p in parts.values()]),
        np.concatenate([p[1] for p in parts.values()]),
        n_classes,
    )


def data_digest(parts: Parts) -> str:
    """SHA-256 of the loaded images and labels, part by part (the data's identity,
    whichever path they are found at)."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        x, y = parts[name]
        for array in (np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int64)):
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def canonical_spec(spec: str) -> str:
    """``spec`` with a file or folder made absolute, so that a model file records data
    that can be found again from any working directory."""
    kind, _, arg = spec.partition(":")
    if kind == "npz" and arg:
        files = []
        for part in arg.split("+"):
            path, sep, query = part.partition("?")
            files.append(f"{Path(path).expanduser().resolve()}{sep}{query}")
        return f"npz:{'+'.join(files)}"
    if kind in ("idx", "folder") and arg:
        return f"{kind}:{Path(arg).expanduser().resolve()}"
    return spec


def _stratified(index: np.ndarray, y: np.ndarray, train_size: float, seed: int):
    try:
        return train_test_split(index, train_size=train_size, stratify=y, random_state=seed)
    except ValueError:  # a class too small to stratify
        return train_test_split(index, train_size=train_size, random_state=seed)


def load_dataset(
    spec: str = "digits",
    *,
    seed: int = 0,
    input_shape: tuple[int, int, int] | None = None,
    n_classes: int | None = None,
) -> Splits:
    """Load the dataset named by ``spec`` and cut its three stratified splits with ``seed``
    (``Splits.spec`` is :func:`canonical_spec` of it).

    vtrust's own cut is 50 % victim, 25 % attacker, 25 % test. With the user's splits,
    their test split is kept as it is, and the attacker split is theirs or a seeded third
    of their training data (the victim keeps the rest).

    ``input_shape`` (C, H, W) and ``n_classes`` are a target's: image folders are resized
    to it, other data must match it, and labels must be below ``n_classes``.
    """
    spec = canonical_spec(spec)
    parts, found_classes = load_parts(spec, input_shape)
    shape = next(iter(parts.values()))[0].shape[1:]
    if input_shape is not None and tuple(shape) != tuple(input_shape):
        raise DatasetError(
            f"{spec}: images are {tuple(shape)} (C, H, W) but the model takes {tuple(input_shape)}"
        )
    if n_classes is not None:
        if found_classes > n_classes:
            raise DatasetError(
                f"{spec}: labels go up to {found_classes - 1} but the model has {n_classes} classes"
            )
        found_classes = n_classes
    name = spec.partition(":")[0] if spec.split(":")[0] in ("idx", "npz", "folder") else spec
    pieces = _cut(parts, seed, spec)

    def dataset(part: str) -> Dataset:
        x, y = pieces[part]
        if len(y) == 0:
            raise DatasetError(f"{spec}: the {part} split is empty")
        return Dataset(x, y, found_classes, f"{name}/{part}")

    return Splits(
        victim=dataset("victim"),
        attacker=dataset("attacker"),
        test=dataset("test"),
        spec=spec,
        seed=seed,
        digest=data_digest(parts),
        user_splits="all" not in parts,
    )


def _cut(parts: Parts, seed: int, spec: str) -> Parts:
    """victim / attacker / test arrays from the loaded parts."""
    if "all" in parts:
        x, y = parts["all"]
        counts = np.bincount(y)
        if (counts[counts > 0] < 4).any():
            raise DatasetError(f"{spec}: every class present needs at least 4 samples to split")
        victim_idx, rest = _stratified(np.arange(len(y)), y, SPLIT_FRACTIONS["victim"], seed)
        attacker_idx, test_idx = _stratified(rest, y[rest], 0.5, seed + 1)
        return {
            part: (x[np.sort(i)], y[np.sort(i)])
            for part, i in (("victim", victim_idx), ("attacker", attacker_idx), ("test", test_idx))
        }
    out = {"test": parts["test"]}
    x, y = parts["train"]
    if "attacker" in parts:
        out["victim"], out["attacker"] = parts["train"], parts["attacker"]
        return out
    if len(y) < 3:
        raise DatasetError(f"{spec}: the training split needs at least 3 samples")
    victim_idx, attacker_idx = _stratified(np.arange(len(y)), y, 2 / 3, seed)
    out["victim"] = (x[np.sort(victim_idx)], y[np.sort(victim_idx)])
    out["attacker"] = (x[np.sort(attacker_idx)], y[np.sort(attacker_idx)])
    return out
