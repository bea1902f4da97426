"""The studies committed on real MNIST as well: ``results/<script>-mnist/`` holds
``experiments/<script>.py --dataset idx:DIR`` with the arguments below (DIR: the MNIST
IDX test set, ``../shared/data/mnist`` beside the checkout). ``reproduce.py`` runs them
and ``readme_results.py`` shows the command in each section's heading."""

from __future__ import annotations

from pathlib import Path

MNIST_DIR = "../shared/data/mnist"  # as the README shows it, relative to the checkout
SUFFIX = "-mnist"
# the zoo CNN for the studies that reproduce the ART comparison; one seed for the
# studies whose three-seed digits runs already give the spread (MNIST costs 3–5× more)
MNIST_RUNS: dict[str, list[str]] = {
    "poisoning-mnist": [],
    "defenses-mnist": ["--victim", "cnn", "--parts", "presets"],
    "stealers-mnist": ["--seeds", "1"],
    "adaptive-mnist": ["--seeds", "1"],
    "stealing-mnist": ["--seeds", "1"],
    "metering-mnist": ["--seeds", "1"],
    "int8-mnist": ["--points", "0", "--no-timit", "--no-probes"],  # LeNet-5's accuracy
}


def study_command(study: str, mnist: Path | str = MNIST_DIR) -> list[str]:
    """``[script, *arguments]`` of a study (``foo.py`` for ``foo``; for a ``foo-mnist``
    study ``foo.py --dataset idx:<mnist> …``)."""
    if study not in MNIST_RUNS:
        return [f"{study}.py"]
    return [f"{study.removesuffix(SUFFIX)}.py", "--dataset", f"idx:{mnist}", *MNIST_RUNS[study]]
