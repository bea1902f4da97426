"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, sort_keys=True, allow_nan=False))


def target_splits(model_file: Path, data: str | None = None):
    """The model of a model file and its dataset splits (``data`` overrides the recorded
    spec); see :func:`vtrust.models.load_with_splits`."""
    from vtrust.models import load_with_splits

    loaded, splits = load_with_splits(model_file, data)
    return loaded.model, splits


def data_option(command):
    """``--data SPEC``: the dataset to use instead of the one the model file records."""
    return click.option(
        "--data",
        "data",
        default=None,
        metavar="SPEC",
        help="Dataset instead of the one the model file records (it moved, or your own): "
        "digits, synthetic[:SEED], idx:DIR, npz:FILE, folder:DIR.",
    )(command)


def simulation_seed_option(command):
    """``--seed``: seeds a simulated attack and the deployed defenses' secret randomness
    (reproducible, and then predictable); by default the defenses draw from a CSPRNG."""
    return click.option(
        "--seed",
        type=int,
        default=None,
        help="Seed the attacker and the defenses' secret randomness (INSECURE: reproducible "
        "runs); default: attacker seed 0, defenses' secrets from a CSPRNG.",
    )(command)
