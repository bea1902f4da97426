"""Model zoo, training loop, prediction helpers and model files."""

from vtrust.models.files import (
    LoadedModel,
    load_model,
    load_with_splits,
    model_sha256,
    save_model,
)
from vtrust.models.training import (
    TrainConfig,
    TrainHistory,
    accuracy,
    agreement,
    fit,
    fit_arrays,
    predict_logits,
    predict_proba,
)
from vtrust.models.zoo import ARCHITECTURES, ArchSpec, ZooModel, build_model

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "LoadedModel",
    "TrainConfig",
    "TrainHistory",
    "ZooModel",
    "accuracy",
    "agreement",
    "build_model",
    "fit",
    "fit_arrays",
    "load_model",
    "load_with_splits",
    "model_sha256",
    "predict_logits",
    "predict_proba",
    "save_model",
]
