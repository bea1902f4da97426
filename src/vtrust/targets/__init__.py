"""Targets: the model under audit, from any source (see :mod:`vtrust.targets.base`).

Sources: vtrust model files, any ``nn.Module`` (:func:`wrap`), any prediction function
(:func:`wrap_predict`), TorchScript, ``torch.export`` programs, state dicts with the
user's module class, ONNX (onnxruntime, white box through a checked torch conversion),
LiteRT/TFLite (black box), and ART classifiers (:mod:`vtrust.interop.art`).

Exports are imported on first use (:mod:`vtrust.targets.sniff` works without torch).
"""

from vtrust._lazy import exports

_WHERE = {
    "InputSpec": "vtrust.targets.base",
    "Target": "vtrust.targets.base",
    "as_target": "vtrust.targets.base",
    "LoadOptions": "vtrust.targets.options",
    "load_target": "vtrust.targets.loading",
    "load_target_and_splits": "vtrust.targets.loading",
    "wrap": "vtrust.targets.wrapping",
    "wrap_predict": "vtrust.targets.wrapping",
}
__all__ = sorted(_WHERE)
__getattr__ = exports(__name__, _WHERE)
