"""Model zoo, training loop, prediction helpers and model files.

Exports are imported on first use: :mod:`vtrust.models.plans` and
:mod:`vtrust.models.header` (architectures and file checks) work without torch.
"""

from vtrust._lazy import exports

_FILES = ("LoadedModel", "load_model", "load_with_splits", "model_sha256", "save_model")
_TRAINING = ("TrainConfig", "TrainHistory", "accuracy", "agreement", "fit", "fit_arrays",
             "predict_logits", "predict_proba")  # fmt: skip
_ZOO = ("ARCHITECTURES", "ArchSpec", "ZooModel", "build_model")

_WHERE = {
    **dict.fromkeys(_FILES, "vtrust.models.files"),
    **dict.fromkeys(_TRAINING, "vtrust.models.training"),
    **dict.fromkeys(_ZOO, "vtrust.models.zoo"),
}
__all__ = sorted(_WHERE)
__getattr__ = exports(__name__, _WHERE)
