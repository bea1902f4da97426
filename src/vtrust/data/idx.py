"""Reader for IDX files, the format of the MNIST distribution (optionally gzip-compressed).

An IDX file starts with a magic number ``0x0000TTDD`` (``TT`` = element type, ``DD`` =
number of dimensions), then ``DD`` big-endian 32-bit sizes, then the elements in C order.
Everything is validated before it is trusted: magic, type code, dimensions and the exact
byte count. Anything else raises :class:`~vtrust.errors.DatasetError`.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from vtrust.errors import DatasetError

# IDX element type codes -> big-endian numpy dtypes.
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_ELEMENTS = 2**31  # refuse absurd headers before allocating anything


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path}: not a valid gzip file ({exc})") from None
    return raw


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of one IDX file into a native-endian numpy array.

    Raises:
        DatasetError: bad magic number, unknown type code, or a byte count that does not
            match the dimensions in the header.
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{source}: bad IDX magic number 0x{data[:4].hex()}")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_TYPES:
        raise DatasetError(f"{source}: unknown IDX element type 0x{type_code:02x}")
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares zero dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(f"{source}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = 1
    for d in dims:
        count *= d
    if count > _MAX_ELEMENTS:
        raise DatasetError(f"{source}: IDX dimensions {dims} are implausibly large")
    dtype = _IDX_TYPES[type_code]
    expected = header_len + count * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(
            f"{source}: IDX dimensions {dims} need {expected} bytes, file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header_len).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` is decompressed) and validate it; see :func:`parse_idx`."""
    p = Path(path)
    return parse_idx(_read_bytes(p), source=str(p))


_IMAGES = re.compile(r"^(?P<prefix>.+)-images-idx3-ubyte(?:\.gz)?$")


def _labels_for(images: Path) -> Path:
    prefix = _IMAGES.match(images.name).group("prefix")  # type: ignore[union-attr]
    for name in (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz"):
        candidate = images.with_name(name)
        if candidate.exists():
            return candidate
    raise DatasetError(f"{images}: no matching {prefix}-labels-idx1-ubyte[.gz] beside it")


def load_idx_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load every ``*-images-idx3-ubyte[.gz]`` / ``*-labels-idx1-ubyte[.gz]`` pair in a folder.

    Returns:
        ``(images, labels)``: ``uint8`` images of shape (N, rows, cols) and ``int64``
        labels of shape (N,), pairs concatenated in file-name order.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise DatasetError(f"IDX folder {folder} does not exist")
    image_files = sorted(p for p in folder.iterdir() if _IMAGES.match(p.name))
    if not image_files:
        raise DatasetError(f"{folder}: no *-images-idx3-ubyte[.gz] files found")
    xs, ys = [], []
    for img_path in image_files:
        lbl_path = _labels_for(img_path)
        images = read_idx(img_path)
        labels = read_idx(lbl_path)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise DatasetError(f"{img_path}: expected unsigned-byte images with 3 dimensions")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DatasetError(f"{lbl_path}: expected unsigned-byte labels with 1 dimension")
        if len(images) != len(labels):
            raise DatasetError(
                f"{img_path.name} has {len(images)} images but {lbl_path.name} "
                f"has {len(labels)} labels"
            )
        if xs and images.shape[1:] != xs[0].shape[1:]:
            raise DatasetError(f"{img_path}: image size {images.shape[1:]} differs from others")
        xs.append(images)
        ys.append(labels.astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)
