"""Study: auditing a model vtrust did not make — an MNIST-sized CNN of the user's own
(ReLU, max-pool, batch norm), exported to ONNX, audited through ``vtrust audit`` as a
user would run it, and what the oracle adds to onnxruntime and LiteRT at batch 256.

    python experiments/byom.py [--dataset idx:../shared/data/mnist] [--seed S] [--no-full]

Without a dataset the images are the digits upscaled to 28×28 (nothing is downloaded).
Writes ``results/byom/results.json`` and ``report.md``: wall time of the default and the
``--quick`` audit (goals: ≤ 5 min and ≤ 1 min on 2 cores), what each found, and the
oracle's overhead ratios (goal ≤ 1.10), A/B interleaved in this run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics(portable=False)  # one thread; onnxruntime and LiteRT follow the CPU anyway

import numpy as np  # noqa: E402
import torch  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from torch import nn  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.evaluation.audit import AuditPlan, audit_target  # noqa: E402
from vtrust.evaluation.overhead import oracle_overhead  # noqa: E402
from vtrust.models import TrainConfig, fit  # noqa: E402
from vtrust.report import Report  # noqa: E402
from vtrust.targets import load_target, load_target_and_splits  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


class UserCNN(nn.Module):
    """A LeNet-style CNN as users write them: conv-BN-ReLU-pool twice, dropout, two dense."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mnist_sized_data(spec: str | None, out: Path) -> str:
    """The dataset spec: the given one, or the digits upscaled to 28×28 in an .npz."""
    if spec:
        return spec
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images[:, None] / 16.0).float()
    big = nn.functional.interpolate(images, size=(28, 28), mode="bilinear").clamp(0, 1)
    path = out / "digits28.npz"
    np.savez(path, x=big.numpy(), y=digits.target)
    return f"npz:{path}"


def export_user_model(data: str, out: Path, seed: int) -> Path:
    splits = load_dataset(data, seed=seed)
    torch.manual_seed(seed)
    model = UserCNN()
    progress.stage(f"[byom] training the user's CNN on {len(splits.victim)} images")
    fit(model, splits.victim, TrainConfig(epochs=3, batch_size=64, lr=2e-3, seed=seed), desc="cnn")
    path = out / "user_cnn.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return path


def timed_audit(model: Path, data: str, plan: AuditPlan, seed: int) -> dict:
    started = time.perf_counter()
    target, splits = load_target_and_splits(model, data, seed=seed)
    result = audit_target(target, splits, plan=plan, seed=seed)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accuracy": result["accuracy"],
        "conversion_max_abs_diff": result["target"].get("conversion_max_abs_diff"),
        "attacks": {r["attack"]: {"fidelity": r["fidelity"],
                                  "queries_to_90": r["queries_to_90_fidelity"],
                                  "caught_by": {n: f["at_query"] for n, f in r["caught_by"].items()
                                                if f["flagged"]}}
                    for r in result["extraction"]},
        "skipped": result["skipped"],
    }  # fmt: skip


def overheads(model: Path) -> dict:
    """The oracle's overhead over onnxruntime (the user's CNN) and LiteRT (both fixtures)."""
    rows = {}
    runtimes = {
        "onnxruntime_user_cnn": model,
        "litert_digits_int8": FIXTURES / "digits_int8.tflite",
        "litert_mnist_int8": FIXTURES / "mnist_int8.tflite",
    }
    for name, path in runtimes.items():
        target = load_target(path)
        x = np.random.default_rng(0).random((256, *target.input_shape), dtype=np.float32)
        rows[name] = oracle_overhead(target, x)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-full", action="store_true", help="Skip the default audit.")
    parser.add_argument("--out", type=Path, default=Path("results/byom"))
    # two seeds at a time: each computes on one thread, so two share the 2 cores without
    # slowing each other much (three seeds one by one would take 12 minutes)
    add_seed_options(parser, jobs=2)
    args = parser.parse_args()
    if run_over_seeds(__file__, args, study="byom"):
        return
    args.out.mkdir(parents=True, exist_ok=True)
    data = mnist_sized_data(args.dataset, args.out)
    model = export_user_model(data, args.out, args.seed)
    label = args.dataset or "the digits upscaled to 28×28"  # not the per-run file's path
    results = {"dataset": label, "torch_threads": torch.get_num_threads(),
               "overhead": overheads(model)}  # fmt: skip
    progress.stage("[byom] quick audit")
    results["quick_audit"] = timed_audit(model, data, AuditPlan.quick(), args.seed)
    if not args.no_full:
        progress.stage("[byom] default audit")
        results["default_audit"] = timed_audit(model, data, AuditPlan(), args.seed)
    report = Report("Auditing the user's own ONNX CNN")
    rows = [[name, r["seconds"], r["accuracy"]] for name, r in results.items()
            if name.endswith("_audit")]  # fmt: skip
    report.add_table("Audit wall time (s)", ["audit", "seconds", "test accuracy"], rows)
    report.add_table(
        "Oracle overhead at batch 256 (median of interleaved rounds)",
        ["runtime", "runtime ms", "oracle ms", "ratio"],
        [[k, v["runtime_ms"], v["oracle_ms"], v["ratio"]] for k, v in results["overhead"].items()],
    )
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[byom] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
