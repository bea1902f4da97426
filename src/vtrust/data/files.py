"""The user's own data: ``.npz`` arrays and folders of images, one sub-folder per class.

Both end as vtrust's form — ``float32`` images (N, C, H, W) in [0, 1], ``int64`` labels in
``range(n_classes)`` — after checks that name the problem: the array's dtype (never an
object array: ``allow_pickle=False``), its rank and layout, NaN or infinity, values
outside [0, 1] (or 0..255 for integer images), labels that are not non-negative integers,
images and labels of different counts, files that are not images.

Layouts: (N, H, W) is grey; (N, C, H, W) and (N, H, W, C) are told apart by where a
channel count of 1 or 3 stands (NCHW when both could be, e.g. 3×3×3 images).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from vtrust.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def to_images(x: np.ndarray, source: str) -> np.ndarray:
    """An image array in any accepted layout and range as float32 (N, C, H, W) in [0, 1]."""
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: images must be numbers, not {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DatasetError(
            f"{source}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with 1 or 3 "
            f"channels, got shape {x.shape}"
        )
    if x.dtype.kind in "biu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DatasetError(f"{source}: integer images must be in 0..255")
        return (x.astype(np.float32) / 255.0).copy()
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{source}: images hold NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DatasetError(f"{source}: float images must be in [0, 1] (or give uint8 0..255)")
    return np.ascontiguousarray(x)


def to_labels(y: np.ndarray, count: int, source: str) -> np.ndarray:
    """Labels as int64 in 0..K−1, one per image."""
    if y.dtype.kind not in "iu" and not (
        y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()
    ):
        raise DatasetError(f"{source}: labels must be integers, not {y.dtype}")
    y = y.reshape(-1).astype(np.int64)
    if len(y) != count:
        raise DatasetError(f"{source}: {count} images but {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{source}: labels must be non-negative class numbers")
    return y


USER_SPLITS = ("train", "test", "attacker")


def npz_parts(path: str | Path, x_key: str = "x", y_key: str = "y"):
    """The labelled parts of an ``.npz`` file: ``{"all": (x, y)}`` from ``x_key`` and
    ``y_key``, or the user's own splits ``{"train": …, "test": …[, "attacker": …]}`` from
    ``x_train``/``y_train``, ``x_test``/``y_test`` (and ``x_attacker``/``y_attacker``);
    images as float32 (N, C, H, W) in [0, 1], labels int64."""
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = set(arrays.files)
            if x_key == "x" and {"x_train", "y_train", "x_test", "y_test"} <= names:
                wanted = {
                    part: (f"x_{part}", f"y_{part}") for part in USER_SPLITS if f"x_{part}" in names
                }
            else:
                wanted = {"all": (x_key, y_key)}
            missing = [k for pair in wanted.values() for k in pair if k not in names]
            if missing:
                raise DatasetError(
                    f"{source}: no array {missing[0]!r} (it holds {', '.join(arrays.files)})"
                )
            raw = {part: (arrays[xk], arrays[yk]) for part, (xk, yk) in wanted.items()}
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{source}: no such file") from None
    except ValueError as exc:  # object arrays need pickle: refused
        raise DatasetError(f"{source}: not a plain-array .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{source}: not a readable .npz file ({exc})") from None
    parts = {}
    for part, (x, y) in raw.items():
        where = source if part == "all" else f"{source} ({part})"
        images = to_images(x, where)
        parts[part] = (images, to_labels(y, len(images), where))
    shapes = {p[0].shape[1:] for p in parts.values()}
    if len(shapes) > 1:
        raise DatasetError(f"{source}: the splits hold images of different shapes {sorted(shapes)}")
    return parts


def load_npz(path: str | Path, x_key: str = "x", y_key: str = "y"):
    """``(x, y, n_classes)`` from the arrays ``x_key`` and ``y_key`` of an ``.npz`` file
    (the user's splits, if it holds them, concatenated)."""
    parts = npz_parts(path, x_key, y_key)
    x = np.concatenate([p[0] for p in parts.values()])
    labels = np.concatenate([p[1] for p in parts.values()])
    return x, labels, max(int(labels.max()) + 1 if len(labels) else 0, 2)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_parts(path: str | Path, shape: tuple[int, int, int] | None = None):
    """The labelled parts of an image folder: ``{"all": (x, y)}`` from ``DIR/<class>/``,
    or the user's splits from ``DIR/train/<class>/`` and ``DIR/test/<class>/`` (and
    ``DIR/attacker/<class>/``), with one class list; see :func:`load_folder`."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    subs = {p.name for p in _class_folders(root)}
    if {"train", "test"} <= subs and subs <= set(USER_SPLITS):
        names = sorted({c.name for part in subs for c in _class_folders(root / part)})
        if len(names) < 2:
            raise DatasetError(f"{root}: needs one sub-folder per class, at least two")
        parts = {}
        for part in (p for p in USER_SPLITS if p in subs):  # train first: it fixes the shape
            x, y, _ = load_folder(root / part, shape, classes=names)
            parts[part], shape = (x, y), x.shape[1:]
        return parts
    x, y, _ = load_folder(root, shape)
    return {"all": (x, y)}


def load_folder(
    path: str | Path, shape: tuple[int, int, int] | None = None, *, classes: list[str] | None = None
):
    """``(x, y, n_classes)`` from ``DIR/<class>/<image>``: classes in name order (or the
    given ``classes``, missing ones allowed), images resized to ``shape`` (C, H, W) when
    given — grey or RGB to match C — else grey if every one is, else RGB, at the most
    common size."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    found = _class_folders(root)
    if classes is None and len(found) < 2:
        raise DatasetError(f"{root}: needs one sub-folder per class, at least two")
    names = classes if classes is not None else [p.name for p in found]
    index = {name: i for i, name in enumerate(names)}
    classes_found = [p for p in found if p.name in index]
    images, labels = [], []
    for folder in classes_found:
        label = index[folder.name]
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{folder}: class {folder.name!r} has no images")
        for file in files:
            try:
                with Image.open(file) as image:
                    image.load()
                    images.append(image.copy())
            except (UnidentifiedImageError, OSError):
                raise DatasetError(f"{file}: not an image PNG/JPEG can read") from None
            labels.append(label)
    if not images:
        raise DatasetError(f"{root}: holds no images")
    if shape is not None:
        if shape[0] not in (1, 3):
            raise DatasetError(f"{root}: images can be made grey or RGB, not {shape[0]} channels")
        grey, size = shape[0] == 1, (shape[2], shape[1])
    else:
        grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
        size = Counter(im.size for im in images).most_common(1)[0][0]
    mode = "L" if grey else "RGB"
    arrays = [
        np.asarray(im.convert(mode).resize(size) if im.size != size else im.convert(mode))
        for im in images
    ]
    x = np.stack(arrays).astype(np.uint8)
    return to_images(x, str(root)), np.array(labels, dtype=np.int64), len(names)
