"""numba's on-disk cache for the proof kernels, in a folder named by their sources' hash.

Compiling the field, extension-field and sum-check kernels takes tens of seconds, which a
fresh process (every ``vtrust prove``) would pay again. numba can cache compiled kernels
on disk, but its own cache checks only the timestamp of the file that defines a kernel,
not the helpers it inlines from other files — an edited helper would leave stale machine
code behind. So the cache lives in ``$XDG_CACHE_HOME/vtrust/numba-<hash>`` (default
``~/.cache``), the hash taken over every source file whose code the kernels contain: any
change gives a new folder and a clean compile. The folder is set only while these
kernels are decorated (numba fixes a function's cache path then), so other libraries'
numba caches are left where they were. A ``NUMBA_CACHE_DIR`` the user set is respected;
where no cache folder can be written, kernels are compiled in memory as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numba

KERNEL_SOURCES = ("field.py", "ext.py", "sumcheck.py", "logup.py", "int8/mle.py", "_jit.py")


def _folder() -> str | None:
    """The cache folder for this version of the kernel sources; None: no caching."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    here = Path(__file__).parent
    digest = hashlib.sha256(numba.__version__.encode())
    for name in KERNEL_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = root / "vtrust" / f"numba-{digest.hexdigest()[:16]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    return str(folder)


FOLDER = _folder()


@contextlib.contextmanager
def _caching() -> Iterator[None]:
    before = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = FOLDER or before
    try:
        yield
    finally:
        numba.config.CACHE_DIR = before


def kernel(fn):
    """``numba.njit`` with the on-disk cache above (when it could be set up)."""
    with _caching():
        return numba.njit(cache=FOLDER is not None)(fn)


def ufunc(signatures):
    """``numba.vectorize`` (nopython) with the same cache."""

    def decorate(fn):
        with _caching():
            return numba.vectorize(signatures, nopython=True, cache=FOLDER is not None)(fn)

    return decorate
