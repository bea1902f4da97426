"""Weight scrambling: a keyed permutation of every layer's parameters, so that a copy of
the weights is useless without the key, and bit-exact unscrambling with it.

Each permutation sorts 64-bit tags drawn from a ChaCha20 stream keyed by
HKDF-SHA256(key, salt, tensor name and shape): the whole 256-bit key counts (the
logistic-map construction of Chaotic Weights, used before, had ≲ 2^100 distinct orbits
per label), and a random 128-bit **salt per scrambled file**, recorded in it, makes the
permutations of two files under one key unrelated — a known plain/scrambled pair reveals
that one file's permutations and nothing of any other. What scrambling does not hide:
each tensor's multiset of values (a permutation only moves them), hence its norms and
value histogram, the architecture, and which tensors are which.

Each weight tensor of shape ``(out, in, *kernel)`` is permuted twice: its ``out · in``
kernels move as wholes (one keyed permutation per layer), then the weights inside each
kernel are permuted (a keyed permutation per kernel; none for fully connected layers,
whose kernels are single weights — the first permutation already moves every weight
anywhere in the matrix). Biases and other 1-D parameters are permuted as vectors.
Permutations only move values, so unscrambling restores the exact bytes.

A scrambled model file records the key's fingerprint and the original weights' hash:
unscrambling with another key is refused before any work, and the result is checked.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust import keystream
from vtrust.errors import ScrambleError
from vtrust.keying import ProtectionKey
from vtrust.models.files import model_sha256

SCHEME = "chacha20-permutation"
SCHEME_VERSION = 2
SALT_BYTES = 16


def new_salt() -> bytes:
    """A fresh per-file salt (128 bits from :mod:`secrets`)."""
    return secrets.token_bytes(SALT_BYTES)


@dataclass(frozen=True)
class TensorPermutation:
    """How one tensor is scrambled: ``kernels`` permutes the rows of its (kernels,
    kernel size) view; ``inside`` (kernels, kernel size) permutes within each row, or is
    None when kernels are single weights."""

    kernels: np.ndarray
    inside: np.ndarray | None

    @classmethod
    def derive(
        cls, key: ProtectionKey, name: str, shape: tuple[int, ...], salt: bytes
    ) -> TensorPermutation:
        rows, width = _grid(shape)
        stream = keystream.derived(key.secret, f"scramble:{name}:{list(shape)}", salt=salt)
        kernels = stream.permutation(rows)
        inside = stream.row_permutations(rows, width) if width > 1 else None
        return cls(kernels, inside)

    def apply(self, values: np.ndarray) -> np.ndarray:
        grid = values.reshape(_grid(values.shape))[self.kernels]
        if self.inside is not None:
            grid = np.take_along_axis(grid, self.inside, axis=1)
        return grid.reshape(values.shape)

    def invert(self, values: np.ndarray) -> np.ndarray:
        grid = values.reshape(_grid(values.shape))
        out = np.empty_like(grid)
        if self.inside is not None:
            np.put_along_axis(out, self.inside, grid, axis=1)
            grid, out = out, np.empty_like(grid)
        out[self.kernels] = grid
        return out.reshape(values.shape)


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """A tensor as (kernels, kernel size): (out·in, prod(kernel)) for ≥ 2-D, (n, 1) for 1-D."""
    if len(shape) == 1:
        return int(shape[0]), 1
    rows = int(shape[0]) * int(shape[1])
    return rows, int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1


def _transform(model: nn.Module, key: ProtectionKey, salt: bytes, forward: bool) -> nn.Module:
    if len(salt) != SALT_BYTES:
        raise ScrambleError(f"a scrambling salt has {SALT_BYTES} bytes")
    out = copy.deepcopy(model)
    state = out.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point() or tensor.ndim == 0:
                continue
            perm = TensorPermutation.derive(key, name, tuple(tensor.shape), salt)
            values = tensor.detach().cpu().numpy()
            moved = perm.apply(values) if forward else perm.invert(values)
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(moved)))
    return out


def scramble(model: nn.Module, key: ProtectionKey, salt: bytes) -> nn.Module:
    """A scrambled copy of ``model`` under ``key`` and the file's ``salt`` (the original
    is untouched)."""
    return _transform(model, key, salt, forward=True)


def unscramble(model: nn.Module, key: ProtectionKey, salt: bytes) -> nn.Module:
    """The inverse of :func:`scramble` with the same key and salt: the original bytes."""
    return _transform(model, key, salt, forward=False)


def scramble_metadata(model: nn.Module, key: ProtectionKey, salt: bytes) -> dict[str, object]:
    """What a scrambled model file records: scheme, salt, key fingerprint, original hash."""
    return {
        "scheme": SCHEME,
        "version": SCHEME_VERSION,
        "salt": salt.hex(),
        "key_fingerprint": key.fingerprint,
        "device": key.device,
        "original_sha256": model_sha256(model),
    }


def unscramble_checked(model: nn.Module, record: object, key: ProtectionKey) -> nn.Module:
    """Unscramble a model loaded from a scrambled file whose metadata ``record`` is given:
    :class:`ScrambleError` for a wrong key, an unknown scheme, or a result whose hash
    differs from the recorded original."""
    if not isinstance(record, dict) or "scheme" not in record:
        raise ScrambleError("not a scrambled model (no scrambling record in its metadata)")
    if record.get("scheme") != SCHEME or record.get("version") != SCHEME_VERSION:
        raise ScrambleError(
            f"scrambling scheme {record.get('scheme')!r} version {record.get('version')!r} "
            f"is not supported (this vtrust reads {SCHEME} {SCHEME_VERSION})"
        )
    if not key.matches(record.get("key_fingerprint")):
        raise ScrambleError("wrong key: it is not the key this model was scrambled with")
    try:
        salt = bytes.fromhex(str(record.get("salt")))
    except ValueError:
        salt = b""
    if len(salt) != SALT_BYTES:
        raise ScrambleError("the scrambling record's salt is malformed")
    restored = unscramble(model, key, salt)
    if model_sha256(restored) != record.get("original_sha256"):
        raise ScrambleError("unscrambled weights differ from the original (file altered?)")
    return restored
