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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from vtrust.data.files import load_folder, load_npz
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
    """The three disjoint splits of one dataset, made from ``spec`` with ``seed``."""

    victim: Dataset
    attacker: Dataset
    test: Dataset
    spec: str
    seed: int

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


def load_arrays(spec: str) -> tuple[np.ndarray, np.ndarray, int]:
    """All samples of the dataset named by ``spec``: ``(x, y, n_classes)``.

    ``spec`` is ``digits``, ``synthetic`` (generator seed 0), ``synthetic:SEED``,
    ``idx:DIR`` (a folder of MNIST-format IDX files), ``npz:FILE`` (arrays ``x`` and
    ``y``) or ``folder:DIR`` (one sub-folder of images per class): see
    :mod:`vtrust.data.files`.
    """
    kind, _, arg = spec.partition(":")
    if kind == "digits" and not arg:
        return _digits()
    if kind == "synthetic":
        try:
            gen_seed = int(arg) if arg else 0
        except ValueError:
            raise DatasetError(f"synthetic dataset seed must be an integer, got {arg!r}") from None
        return _synthetic(gen_seed)
    if kind == "idx" and arg:
        return _idx(str(Path(arg).expanduser()))
    if kind == "npz" and arg:
        return load_npz(Path(arg).expanduser())
    if kind == "folder" and arg:
        return load_folder(Path(arg).expanduser())
    raise DatasetError(
        f"unknown dataset {spec!r}; expected digits, synthetic[:SEED], idx:DIR, npz:FILE "
        "or folder:DIR"
    )


def canonical_spec(spec: str) -> str:
    """``spec`` with a file or folder made absolute, so that a model file records data
    that can be found again from any working directory."""
    kind, _, arg = spec.partition(":")
    if kind in ("idx", "npz", "folder") and arg:
        return f"{kind}:{Path(arg).expanduser().resolve()}"
    return spec


def load_dataset(spec: str = "digits", *, seed: int = 0) -> Splits:
    """Load the dataset named by ``spec`` and cut its three stratified splits with ``seed``
    (``Splits.spec`` is :func:`canonical_spec` of it)."""
    spec = canonical_spec(spec)
    x, y, n_classes = load_arrays(spec)
    counts = np.bincount(y, minlength=n_classes)
    if (counts[counts > 0] < 4).any():
        raise DatasetError(f"{spec}: every class present needs at least 4 samples to split")
    index = np.arange(len(y))
    victim_idx, rest = train_test_split(
        index, train_size=SPLIT_FRACTIONS["victim"], stratify=y, random_state=seed
    )
    attacker_idx, test_idx = train_test_split(
        rest, train_size=0.5, stratify=y[rest], random_state=seed + 1
    )
    name = spec.partition(":")[0] if spec.split(":")[0] in ("idx", "npz", "folder") else spec
    return Splits(
        victim=Dataset(x[np.sort(victim_idx)], y[np.sort(victim_idx)], n_classes, f"{name}/victim"),
        attacker=Dataset(
            x[np.sort(attacker_idx)], y[np.sort(attacker_idx)], n_classes, f"{name}/attacker"
        ),
        test=Dataset(x[np.sort(test_idx)], y[np.sort(test_idx)], n_classes, f"{name}/test"),
        spec=spec,
        seed=seed,
    )
