"""vtrust: protect machine-learning models on untrusted devices and verify what they compute.

``vtrust.wrap(module, …)``, ``vtrust.wrap_predict(fn, …)`` and ``vtrust.load_target(path)``
make the model under audit a :class:`vtrust.targets.Target` (imported on first use, so
``import vtrust`` stays light).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vtrust")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from vtrust._lazy import exports  # noqa: E402

_LAZY = ("wrap", "wrap_predict", "load_target", "load_target_and_splits", "Target", "InputSpec")

__all__ = ["__version__", *_LAZY]
__getattr__ = exports(__name__, dict.fromkeys(_LAZY, "vtrust.targets"))
