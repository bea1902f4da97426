"""vtrust: protect machine-learning models on untrusted devices and verify what they compute."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vtrust")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
