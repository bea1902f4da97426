"""Recipes: train a zoo model on a named dataset with its tuned defaults, recording
everything a model file's metadata needs to reproduce it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vtrust.data import Splits, load_dataset
from vtrust.models.files import model_sha256
from vtrust.models.training import TrainConfig, TrainHistory, accuracy, fit
from vtrust.models.zoo import ARCHITECTURES, ZooModel, build_model


@dataclass
class TrainedModel:
    """A trained model with its metadata (for :func:`~vtrust.models.save_model`)."""

    model: ZooModel
    metadata: dict[str, Any]
    history: TrainHistory

    @property
    def test_accuracy(self) -> float:
        return self.metadata["test_accuracy"]


def default_config(arch: str, *, seed: int, epochs: int | None = None) -> TrainConfig:
    """The tuned training settings of ``arch`` with ``seed`` (and ``epochs`` if given)."""
    defaults = ARCHITECTURES[arch].train_defaults if arch in ARCHITECTURES else {}
    config = TrainConfig(**defaults, seed=seed)
    return replace(config, epochs=epochs) if epochs is not None else config


def train_model(
    splits: Splits | str,
    arch: str,
    *,
    seed: int = 0,
    split_seed: int = 0,
    epochs: int | None = None,
    params: dict[str, Any] | None = None,
) -> TrainedModel:
    """Train ``arch`` on the victim split of ``splits`` (or of the dataset it names).

    ``seed`` drives initialisation and batch order; ``split_seed`` the data splits (used
    only when ``splits`` is a dataset name). Same seeds → bit-identical weights.
    """
    if isinstance(splits, str):
        splits = load_dataset(splits, seed=split_seed)
    model = build_model(arch, splits.input_shape, splits.n_classes, params, seed=seed)
    config = default_config(arch, seed=seed, epochs=epochs)
    history = fit(model, splits.victim, config, desc=f"train {arch}")
    metadata = {
        "dataset": {"spec": splits.spec, "split_seed": splits.seed, "sha256": splits.digest},
        "training": {**config.to_json(), "seed": seed},
        "test_accuracy": accuracy(model, splits.test),
        "weights_sha256": model_sha256(model),
    }
    return TrainedModel(model, metadata, history)
