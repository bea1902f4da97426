"""Empirical null: the watermark score of independently trained models (same
architecture and data, other seeds), which never saw the key."""

from __future__ import annotations

from vtrust import progress
from vtrust.data import Splits
from vtrust.errors import InputError
from vtrust.models.recipes import train_model
from vtrust.watermark.keys import WatermarkKey
from vtrust.watermark.ownership import verify
from vtrust.watermark.stats import NullCalibration


def calibrate(
    key: WatermarkKey,
    splits: Splits,
    arch: str,
    *,
    models: int = 20,
    first_seed: int = 1000,
    params: dict | None = None,
) -> NullCalibration:
    """Train ``models`` null models of ``arch`` on ``splits`` and collect their scores."""
    if models < 2:
        raise InputError("calibration needs at least 2 null models")
    scores = []
    bare = key.with_calibration(None)
    for i in progress.bar(range(models), desc="null models"):
        null = train_model(splits, arch, seed=first_seed + i, params=params).model
        scores.append(verify(null, bare, splits, fpr=1.0).score)
    return NullCalibration(tuple(scores))
