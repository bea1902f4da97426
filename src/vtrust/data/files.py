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


def load_npz(path: str | Path, x_key: str = "x", y_key: str = "y"):
    """``(x, y, n_classes)`` from the arrays ``x_key`` and ``y_key`` of an ``.npz`` file."""
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in (x_key, y_key) if k not in arrays.files]
            if missing:
                raise DatasetError(
                    f"{source}: no array {missing[0]!r} (it holds {', '.join(arrays.files)})"
                )
            x, y = arrays[x_key], arrays[y_key]
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{source}: no such file") from None
    except ValueError as exc:  # object arrays need pickle: refused
        raise DatasetError(f"{source}: not a plain-array .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{source}: not a readable .npz file ({exc})") from None
    images = to_images(x, source)
    labels = to_labels(y, len(images), source)
    return images, labels, max(int(labels.max()) + 1 if len(labels) else 0, 2)


def load_folder(path: str | Path):
    """``(x, y, n_classes)`` from ``DIR/<class>/<image>``: classes in name order, images
    grey if every one is, else RGB, resized to the most common size."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{root}: needs one sub-folder per class, at least two")
    images, labels = [], []
    for label, folder in enumerate(classes):
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
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    size = Counter(im.size for im in images).most_common(1)[0][0]
    mode = "L" if grey else "RGB"
    arrays = [
        np.asarray(im.convert(mode).resize(size) if im.size != size else im.convert(mode))
        for im in images
    ]
    x = np.stack(arrays).astype(np.uint8)
    return to_images(x, str(root)), np.array(labels, dtype=np.int64), len(classes)
