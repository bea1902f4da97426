"""A population of independently trained models: what "not stolen" looks like.

Every member is trained without the owner's model and without the owner's private
(victim) split: on the attacker split — data from the same distribution the owner never
had — or on a random three-quarters of it, over several architectures and seeds. That
is exactly the population a test must not flag (an honest competitor with its own data),
and the one dataset inference is known to struggle with.

Members are cached as vtrust model files in a directory with a ``manifest.json``; a
rerun loads what is there and trains only what is missing (files are written to a
temporary name, then renamed, so a torn write is never read).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vtrust import progress
from vtrust.data import Dataset, Splits
from vtrust.errors import InputError

DEFAULT_ARCHS = ("mlp", "cnn", "softmax")


@dataclass(frozen=True)
class Member:
    """One null model: its architecture, training seed and data (``attacker`` or
    ``attacker-3/4``: a random three-quarters of it drawn with the seed)."""

    arch: str
    seed: int
    data: str

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.data.replace('/', '_')}-{self.seed}"


def members(
    count: int, archs: tuple[str, ...] = DEFAULT_ARCHS, first_seed: int = 5000
) -> list[Member]:
    """``count`` members cycling over the architectures and the two data choices."""
    if count < 1:
        raise InputError(f"a null population needs at least one model, got {count}")
    data = ("attacker", "attacker-3/4")
    return [Member(archs[i % len(archs)], first_seed + i, data[(i // len(archs)) % 2])
            for i in range(count)]  # fmt: skip


def training_data(splits: Splits, member: Member) -> Dataset:
    """The member's training set (never the victim split)."""
    source = splits.attacker
    if member.data == "attacker":
        return source
    if member.data != "attacker-3/4":
        raise InputError(f"unknown null-model data {member.data!r}")
    pick = np.sort(
        np.random.default_rng(member.seed).permutation(len(source))[: 3 * len(source) // 4]
    )
    return Dataset(
        source.x[pick], np.asarray(source.y)[pick], source.n_classes, f"{source.name}[3/4]"
    )


def population(splits: Splits, count: int = 120, *, cache: str | Path | None = None,
               archs: tuple[str, ...] = DEFAULT_ARCHS) -> list[tuple[Member, object]]:  # fmt: skip
    """``count`` null models (member, torch module) for ``splits``, trained with the
    zoo's default recipes, loaded from ``cache`` where present."""
    from vtrust.models import build_model, fit
    from vtrust.models.files import load_model, save_model
    from vtrust.models.recipes import default_config

    folder = Path(cache) if cache else None
    digest = hashlib.sha256(np.ascontiguousarray(splits.attacker.x).tobytes()).hexdigest()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path = folder / "manifest.json"
        if manifest_path.exists():
            try:
                made_for = json.loads(manifest_path.read_text()).get("attacker_sha256")
            except (OSError, ValueError, AttributeError):
                made_for = None
            if made_for != digest:
                raise InputError(f"the null-model cache {folder} was made for other data "
                                 "(or is damaged): use another folder")  # fmt: skip
    out = []
    for member in progress.bar(members(count, archs), desc="null models"):
        path = folder / f"{member.name}.safetensors" if folder is not None else None
        if path is not None and path.exists():
            out.append((member, load_model(path).model))
            continue
        model = build_model(member.arch, splits.input_shape, splits.n_classes, seed=member.seed)
        config = default_config(member.arch, seed=member.seed)
        fit(model, training_data(splits, member), config, desc=f"null {member.name}")
        if path is not None:
            save_model(path, model, {"null_member": asdict(member)})  # atomic
        out.append((member, model))
    if folder is not None:
        manifest = {"dataset": splits.spec, "attacker_sha256": digest,
                    "members": [asdict(m) for m, _ in out]}  # fmt: skip
        temporary = folder / "manifest.json.tmp"
        temporary.write_text(json.dumps(manifest, indent=1))
        os.replace(temporary, folder / "manifest.json")
    return out
