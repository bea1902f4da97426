"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, sort_keys=True, allow_nan=False))


def target_splits(model_file: Path):
    """Load a model file and the dataset splits recorded in its metadata."""
    from vtrust.data import load_dataset
    from vtrust.errors import ModelFileError
    from vtrust.models import load_model

    loaded = load_model(model_file)
    dataset = loaded.metadata.get("dataset")
    if not isinstance(dataset, dict) or "spec" not in dataset:
        raise ModelFileError(f"{model_file}: metadata does not name the training dataset")
    splits = load_dataset(str(dataset["spec"]), seed=int(dataset.get("split_seed", 0)))
    return loaded.model, splits
