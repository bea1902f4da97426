"""Weight scrambling: a keyed chaotic permutation of every layer's parameters, so that a
copy of the weights is useless without the key, and bit-exact unscrambling with it.

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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vtrust.errors import ScrambleError
from vtrust.keying import ProtectionKey
from vtrust.models.files import model_sha256
from vtrust.protect import chaos

SCHEME = "logistic-permutation"
SCHEME_VERSION = 1


@dataclass(frozen=True)
class TensorPermutation:
    """How one tensor is scrambled: ``kernels`` permutes the rows of its (kernels,
    kernel size) view; ``inside`` (kernels, kernel size) permutes within each row, or is
    None when kernels are single weights."""

    kernels: np.ndarray
    inside: np.ndarray | None

    @classmethod
    def derive(cls, key: ProtectionKey, name: str, shape: tuple[int, ...]) -> TensorPermutation:
        rows, width = _grid(shape)
        kernels = chaos.permutation(key.secret, f"scramble:{name}:kernels", rows)
        inside = (
            chaos.row_permutations(key.secret, f"scramble:{name}:inside", rows, width)
            if width > 1
            else None
        )
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


def _transform(model: nn.Module, key: ProtectionKey, forward: bool) -> nn.Module:
    out = copy.deepcopy(model)
    state = out.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if not tensor.is_floating_point() or tensor.ndim == 0:
                continue
            perm = TensorPermutation.derive(key, name, tuple(tensor.shape))
            values = tensor.detach().cpu().numpy()
            moved = perm.apply(values) if forward else perm.invert(values)
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(moved)))
    return out


def scramble(model: nn.Module, key: ProtectionKey) -> nn.Module:
    """A scrambled copy of ``model`` (the original is untouched)."""
    return _transform(model, key, forward=True)


def unscramble(model: nn.Module, key: ProtectionKey) -> nn.Module:
    """The inverse of :func:`scramble` with the same key: the original bytes."""
    return _transform(model, key, forward=False)


def scramble_metadata(model: nn.Module, key: ProtectionKey) -> dict[str, object]:
    """What a scrambled model file records: scheme, key fingerprint, original hash."""
    return {
        "scheme": SCHEME,
        "version": SCHEME_VERSION,
        "key_fingerprint": key.fingerprint,
        "device": key.device,
        "original_sha256": model_sha256(model),
    }


def unscramble_checked(model: nn.Module, record: object, key: ProtectionKey) -> nn.Module:
    """Unscramble a model loaded from a scrambled file whose metadata ``record`` is given:
    :class:`ScrambleError` for a wrong key, an unknown scheme, or a result whose hash
    differs from the recorded original."""
    if not isinstance(record, dict) or record.get("scheme") != SCHEME:
        raise ScrambleError("not a scrambled model (no scrambling record in its metadata)")
    if record.get("version") != SCHEME_VERSION:
        raise ScrambleError(f"scrambling version {record.get('version')!r} is not supported")
    if not key.matches(str(record.get("key_fingerprint", ""))):
        raise ScrambleError("wrong key: it is not the key this model was scrambled with")
    restored = unscramble(model, key)
    if model_sha256(restored) != record.get("original_sha256"):
        raise ScrambleError("unscrambled weights differ from the original (file altered?)")
    return restored
