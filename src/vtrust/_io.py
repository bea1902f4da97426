"""Atomic file output: a file is either written whole or not at all."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from vtrust.errors import OutputError


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def output_folder(path: str | os.PathLike[str]) -> Path:
    """Create the folder ``path`` (and its parents) for a command's outputs — a report
    folder the user named with ``--out DIR``; OutputError if it is a file."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder}: exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    return folder


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file to write: OutputError if its folder does not exist (never
    created silently) or if it is itself a folder."""
    target = Path(path)
    if not target.parent.is_dir():
        raise OutputError(f"{target}: the folder {target.parent} does not exist")
    if target.is_dir():
        raise OutputError(f"{target}: is a folder, not a file")
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash or error leaves either the previous file or nothing, never a partial file.
    The folder must exist (:func:`check_output_path`; :func:`output_folder` makes a
    report folder). ``private`` files (keys, identities, registries of secrets) are
    readable by their owner only (0600) from the moment they exist; others get the
    usual mode (0666 less the umask), so a report a CI job publishes is readable.
    """
    target = check_output_path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600 if private else _default_mode())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return target


def digests_equal(expected: str, given: object) -> bool:
    """Constant-time comparison of a hex digest with an untrusted value from a file: False
    (never an exception) for anything that is not a lowercase hex string."""
    if not isinstance(given, str) or len(given) != len(expected):
        return False
    if not given.isascii() or any(c not in "0123456789abcdef" for c in given):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` as JSON with sorted keys and a trailing newline (stable across runs)."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, private: bool = False) -> Path:
    """Write ``obj`` as canonical JSON atomically."""
    return atomic_write_text(path, canonical_json(obj), private=private)


MAX_JSON_NESTING = 2000


def parse_json(data: str | bytes) -> Any:
    """``json.loads`` for untrusted input. Nesting depth is bounded by the interpreter's
    recursion limit, which some libraries raise process-wide (py_ecc sets 100,000 —
    enough for a hostile file of brackets to overflow the C stack), so it is capped at
    :data:`MAX_JSON_NESTING` while parsing. Too deep a document raises
    ``json.JSONDecodeError`` like any other malformed one."""
    limit = sys.getrecursionlimit()
    capped = limit > MAX_JSON_NESTING
    if capped:
        sys.setrecursionlimit(MAX_JSON_NESTING)
    try:
        return json.loads(data)
    except RecursionError:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        raise json.JSONDecodeError("document nested too deeply", text[:100], 0) from None
    finally:
        if capped:
            sys.setrecursionlimit(limit)
