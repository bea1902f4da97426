"""File-level workflows behind the CLI: mark a model file, fingerprint copies."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from vtrust._io import output_folder
from vtrust.models import accuracy, build_model, load_with_splits, model_sha256, save_model
from vtrust.models.recipes import default_config
from vtrust.watermark.dynamic import EPOCH_FACTOR, DynamicWatermark, new_dynamic_key
from vtrust.watermark.keys import save_key
from vtrust.watermark.notary import Notary
from vtrust.watermark.ownership import verify
from vtrust.watermark.registry import FingerprintRegistry, fingerprint_copies
from vtrust.watermark.static import StaticWatermark, new_static_key


def embed_watermark(
    model_file: Path,
    out: Path,
    key_out: Path,
    *,
    kind: str,
    bits: int = 256,
    layer: str | None = None,
    strength: float = 0.05,
    style: str = "noise",
    triggers: int = 100,
    retrain: bool = False,
    epochs: int | None = None,
    owner: str = "",
    seed: int | None = None,
    notary: Notary | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Embed a new key into the model file's model (fine-tuning it, or retraining it from
    scratch with ``retrain``); write the marked model and the key — with a notary's
    receipt dating its commitment when a ``notary`` is given."""
    loaded, splits = load_with_splits(model_file, data)
    spec = loaded.model.spec
    before = accuracy(loaded.model, splits.test)
    train_seed = int(loaded.metadata.get("training", {}).get("seed", 0))
    tuned = default_config(spec.name, seed=train_seed)
    if retrain:
        model = build_model(
            spec.name, spec.input_shape, spec.n_classes, spec.params, seed=train_seed
        )
        factor = EPOCH_FACTOR if kind == "dynamic" else 1.0
        config = replace(tuned, epochs=epochs or math.ceil(factor * tuned.epochs))
    elif kind == "static":  # a gentle fine-tune: the regularizer does the work
        model = loaded.model
        config = replace(tuned, epochs=epochs or 20, cosine=False, lr=tuned.lr / 2)
    else:  # the triggers are a new task to learn: a full fine-tuning schedule
        model = loaded.model
        config = replace(tuned, epochs=epochs or 40)
    if kind == "static":
        key = new_static_key(
            model, bits=bits, layer=layer, strength=strength, seed=seed, owner=owner
        )
        StaticWatermark(key).embed(model, splits.victim, config)
    else:
        key = new_dynamic_key(splits, style=style, triggers=triggers, seed=seed, owner=owner)
        DynamicWatermark(key, splits).embed(model, splits.victim, config)
    after = accuracy(model, splits.test)
    metadata = {k: v for k, v in loaded.metadata.items() if k in ("dataset", "training")}
    metadata.update(test_accuracy=after, watermark={"kind": kind, "commitment": key.commitment})
    if notary is not None:
        key = key.with_receipt(notary.notarize(key.commitment, owner))
    save_model(out, model, metadata)
    save_key(key_out, key)
    return {
        "kind": kind,
        "accuracy_before": before,
        "accuracy_after": after,
        "commitment": key.commitment,
        "model_sha256": model_sha256(model),
        "verification": verify(model, key, splits, fpr=1e-6).to_json(),
        "out": str(out),
        "key": str(key_out),
        "notarized": key.receipt is not None,
        "insecure_seed": seed,
    }


def fingerprint_model(
    model_file: Path,
    users: list[str],
    registry: Path,
    out_dir: Path,
    *,
    model_version: str = "1",
    bits: int = 128,
    seed: int | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """One marked copy per user in ``out_dir`` (created), keys in the SQLite
    ``registry`` (its folder must exist)."""
    loaded, splits = load_with_splits(model_file, data)
    store = FingerprintRegistry(registry)
    out_dir = output_folder(out_dir)
    copies = fingerprint_copies(loaded.model, splits.victim, users, bits=bits, seed=seed)
    result = {}
    for user, (model, key) in copies.items():
        path = Path(out_dir) / f"{Path(model_file).stem}-{user}.safetensors"
        meta = {k: v for k, v in loaded.metadata.items() if k in ("dataset", "training")}
        meta.update(
            test_accuracy=accuracy(model, splits.test),
            fingerprint={"user": user, "model_version": model_version},
        )
        save_model(path, model, meta)
        store.register(user, model_version, key)
        result[user] = {
            "file": str(path),
            "accuracy": meta["test_accuracy"],
            "commitment": key.commitment,
        }
    return {"registry": str(registry), "copies": result}
