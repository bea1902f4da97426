"""A pool of natural-image patches for attackers who lack the victim's data.

Patches are cut at random positions and sizes from scikit-learn's two bundled sample
photographs, converted to the victim's channel count, resized (area averaging) to its
input size and stretched to [0, 1]. This is the problem-domain-free query source of
Knockoff Nets and CopycatCNN, available offline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from vtrust.errors import InputError


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img, dtype=np.uint8) for img in load_sample_images().images)


def natural_image_pool(n: int, input_shape: tuple[int, int, int], *, seed: int) -> np.ndarray:
    """``n`` seeded natural-image patches as ``float32`` (n, C, H, W) in [0, 1].

    Args:
        n: number of patches.
        input_shape: (C, H, W) of the victim's inputs; C must be 1 or 3.
        seed: seeds patch positions, sizes and flips.
    """
    channels, height, width = input_shape
    if channels not in (1, 3):
        raise InputError(f"natural images have 1 or 3 channels, not {channels}")
    if n < 0:
        raise InputError(f"number of patches must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    photos = _photos()
    out = np.empty((n, channels, height, width), dtype=np.float32)
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        ph, pw = photo.shape[:2]
        side = int(rng.integers(2 * max(height, width), min(ph, pw, 8 * max(height, width)) + 1))
        top = int(rng.integers(0, ph - side + 1))
        left = int(rng.integers(0, pw - side + 1))
        patch = Image.fromarray(photo[top : top + side, left : left + side])
        if channels == 1:
            patch = patch.convert("L")
        arr = np.asarray(patch.resize((width, height), Image.Resampling.BOX), dtype=np.float32)
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        lo, hi = float(arr.min()), float(arr.max())
        out[i] = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return out
