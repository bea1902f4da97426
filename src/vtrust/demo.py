"""The main job, ``vtrust demo``: the whole pipeline on the embedded digits data.

Currently: train the four default victims (MLP, CNN, softmax regression, quadratic
network), save them as model files, and write a report with their accuracy and training
curves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust.data import load_dataset
from vtrust.models import save_model
from vtrust.models.recipes import train_model
from vtrust.report import Report, bar_plot, line_plot

DEMO_ARCHES = ("mlp", "cnn", "softmax", "quad")


def run_demo(out_dir: str | Path, *, dataset: str = "digits", seed: int = 0) -> dict[str, Any]:
    """Run the demo into ``out_dir``; return the report's JSON data."""
    out = Path(out_dir)
    started = time.perf_counter()
    splits = load_dataset(dataset, seed=seed)
    progress.stage(
        f"[demo] dataset {dataset}: victim {len(splits.victim)}, attacker "
        f"{len(splits.attacker)}, test {len(splits.test)}"
    )
    models: dict[str, Any] = {}
    curves = {}
    for arch in DEMO_ARCHES:
        trained = train_model(splits, arch, seed=seed)
        path = out / "models" / f"{dataset}-{arch}.safetensors"
        save_model(path, trained.model, trained.metadata)
        models[arch] = {
            "file": str(path.relative_to(out)),
            "test_accuracy": trained.test_accuracy,
            "model_sha256": trained.metadata["weights_sha256"],
            "parameters": sum(p.numel() for p in trained.model.parameters()),
            "epochs": trained.metadata["training"]["epochs"],
        }
        epochs = range(1, len(trained.history.loss) + 1)
        curves[arch] = (epochs, trained.history.loss)
        progress.stage(f"[demo] trained {arch}: test accuracy {trained.test_accuracy:.4f}")

    report = Report(f"vtrust demo on {dataset}")
    report.add_text(
        f"Dataset `{dataset}` with split seed {seed}: {len(splits.victim)} victim, "
        f"{len(splits.attacker)} attacker and {len(splits.test)} test samples."
    )
    report.add_table(
        "Victim models",
        ["architecture", "parameters", "epochs", "test accuracy", "sha256 (first 16)"],
        [
            [a, m["parameters"], m["epochs"], m["test_accuracy"], m["model_sha256"][:16]]
            for a, m in models.items()
        ],
    )
    report.add_figure(
        "accuracy.png",
        bar_plot(
            {a: m["test_accuracy"] for a, m in models.items()},
            title=f"Test accuracy on {dataset}",
            ylabel="top-1 accuracy",
        ),
        "test accuracy of each victim",
    )
    report.add_figure(
        "training-loss.png",
        line_plot(curves, title="Training loss", xlabel="epoch", ylabel="loss", logx=False),
        "training loss per epoch",
    )
    data = {"dataset": dataset, "seed": seed, "models": models}
    report.write(out, data)
    progress.stage(f"[demo] wrote {out / 'report.md'} in {time.perf_counter() - started:.1f} s")
    return data
