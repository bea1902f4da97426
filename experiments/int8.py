"""Study: verifiable inference for ordinary int8 networks — the accuracy of
post-training quantisation, and what proving costs for LeNet-5, a CIFAR-shaped CNN of
≈ 266k parameters, VGG11 on CIFAR-shaped input and the TIMIT shape with ReLU, beside
the memory probes (the MNIST convolution at batch 512, a dense 16,384² layer).

    python experiments/int8.py [--dataset digits|idx:DIR] [--seed S] [--repeats N]
        [--no-timit] [--no-probes] [--out DIR]

On digits the zoo CNN and MLP are quantised; on MNIST (``idx:DIR``) LeNet-5 is trained
and quantised too. Costs use random int8 weights (the architectures' shapes are what
matters for cost) and single-threaded numerics; every ratio is measured within one run
(medians of ``--repeats``). The memory probes run in child processes, so each peak is
that probe's alone (resident set size, the interpreter and libraries included).
Writes ``results.json``, ``report.md`` and a plot to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics(portable=False)  # one thread; timings on the CPU's own fastest code paths

import numpy as np  # noqa: E402
import torch  # noqa: E402
from over_seeds import run_study  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.models import TrainConfig, fit  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.proofs.int8 import protocol as P  # noqa: E402
from vtrust.proofs.int8.litert import compare_with_litert, import_tflite  # noqa: E402
from vtrust.proofs.int8.ptq import quantize_model  # noqa: E402
from vtrust.proofs.int8.shapes import (  # noqa: E402
    ARCHITECTURES,
    float_model,
    float_twin,
    random_network,
    single_layer,
    timit_relu,
)
from vtrust.report import Report, bar_plot  # noqa: E402
from vtrust.timing import median_seconds  # noqa: E402

#: zkCNN's reference implementation measured on a 2-core machine of this kind (the
#: issue's anchor: one thread, random weights, circuit building not counted)
ZKCNN = {
    "lenet5@1": {
        "prove_s": "0.22–0.25",
        "verify": "3 ms + ≈ 40 ms wiring",
        "proof_kb": 71,
        "peak_mb": 124,
    },
    "lenet5@16": {"prove_s": "2.4", "proof_kb": 154, "peak_mb": 1600},
    "vgg11@1": {"prove_s": "24", "proof_kb": 304, "peak_mb": 6500},
}
DEEPPROVE_CNN264K = {"prove_s": 1.242, "verify_s": 0.599, "setting": "64-core AMD EPYC 7B12"}
COST_POINTS = [("lenet5", 1), ("lenet5", 16), ("lenet5", 64), ("cifar_cnn", 1), ("vgg11", 1)]
PROBES = {"mnist-conv": 512, "dense-16k": 1, "vgg11": 1, "lenet5": 16}


def accuracy_part(args) -> dict:
    """Float against int8 accuracy of the quantised models on the test split."""
    splits = load_dataset(args.dataset, seed=args.seed)
    models = {}
    for arch in ("cnn", "mlp"):
        progress.stage(f"[int8] training the zoo {arch} on {args.dataset}")
        models[arch] = train_model(splits, arch, seed=args.seed).model
    if tuple(splits.input_shape) == ARCHITECTURES["lenet5"][1]:
        progress.stage("[int8] training LeNet-5 (ReLU, max-pool)")
        torch.manual_seed(args.seed)
        lenet = float_model("lenet5", splits.n_classes)
        fit(lenet, splits.victim, TrainConfig(epochs=args.lenet_epochs, lr=2e-3, seed=args.seed))
        models["lenet5"] = lenet
    out = {}
    calibration = splits.victim.x[:512]
    for name, model in models.items():
        with torch.no_grad():
            float_pred = model.eval()(torch.from_numpy(splits.test.x)).argmax(1).numpy()
        row = {"float_accuracy": float((float_pred == splits.test.y).mean())}
        for per_channel, key in ((False, "per_tensor"), (True, "per_channel")):
            quantized = quantize_model(model, calibration, per_channel=per_channel)
            pred = quantized.predict(splits.test.x)
            row[key] = {"accuracy": float((pred == splits.test.y).mean()),
                        "agreement": float((pred == float_pred).mean())}  # fmt: skip
        row["loss_pt"] = 100 * (row["float_accuracy"] - row["per_tensor"]["accuracy"])
        out[name] = row
    return {"dataset": args.dataset, "test_size": int(len(splits.test.y)), "models": out}


def cost_point(network, batch: int, repeats: int, seed: int, inputs=None) -> dict:
    """Forward, prove and verify times (medians), ratios, proof size, soundness; on
    random inputs, or the first ``batch`` of ``inputs`` (then without the torch twin)."""
    rng = np.random.default_rng(seed)
    if inputs is None:
        x = rng.integers(0, 128, size=(batch, *network.input_shape))
        twin, xt = float_twin(network), torch.from_numpy(x.astype(np.float32))
    else:
        x, twin = inputs[:batch], None
    P.run_interactive(network, x[:1])  # warm the kernels
    values = network.forward(x)
    messages = P.prove_noninteractive(network, x, values)
    with torch.no_grad():
        torch_s = median_seconds(lambda: twin(xt), repeats) if twin is not None else None
    forward_s = median_seconds(lambda: network.forward(x), repeats)
    prove_s = median_seconds(lambda: P.prove_noninteractive(network, x, values), repeats)
    verify_s = median_seconds(lambda: P.verify_noninteractive(network, x, messages), repeats)
    sizes = P.proof_size(messages)
    stated = P.soundness(network, batch)
    return {
        "batch": batch, "parameters": _parameters(network),
        "torch_forward_s": torch_s, "int8_forward_s": forward_s, "extra_prover_s": prove_s,
        "execute_prove_s": forward_s + prove_s, "verify_s": verify_s,
        "int8_over_torch": None if torch_s is None else forward_s / torch_s,
        "extra_prover_over_forward": prove_s / forward_s,
        "verify_over_forward": verify_s / forward_s,
        "proof_kb": sizes["total"] / 1000, "auxiliary_kb": sizes["auxiliary"] / 1000,
        "proof_bytes": sizes, "soundness_total": stated["total"], "soundness_bits": stated["bits"],
    }  # fmt: skip


def litert_part(args) -> dict:
    """The .tflite fixtures imported exactly: int8 values differing from LiteRT's
    reference, optimised and default (XNNPACK) kernels; accuracies; proof costs."""
    fixtures = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    out = {}
    for name in ("digits_int8", "mnist_int8"):
        progress.stage(f"[int8] importing {name}.tflite and comparing with LiteRT")
        raw = (fixtures / f"{name}.tflite").read_bytes()
        started = time.perf_counter()
        imported = import_tflite(raw, name)
        import_s = time.perf_counter() - started
        builtin = import_tflite(raw, name, "builtin")
        network = imported.network
        try:
            splits = load_dataset(args.dataset, seed=args.seed, input_shape=network.input_shape)
            test = splits.test
            x = imported.quantized.quantize_inputs(test.x[: args.litert_images])
            y, data = test.y[: args.litert_images], f"{args.dataset} test split"
        except Exception:  # noqa: BLE001 — the dataset's images do not fit this model
            low, high = network.input_range
            rng = np.random.default_rng(args.seed)
            x = rng.integers(low, high + 1, (args.litert_images, *network.input_shape))
            y, data = None, "random int8 images"
        cases = {
            "reference": (imported, "reference"),
            "builtin, imported for reference": (imported, "builtin"),
            "builtin": (builtin, "builtin"),
            "XNNPACK (default)": (imported, "default"),
        }
        row = {"layers": len(network.layers), "parameters": _parameters(network),
               "import_s": import_s, "data": data, "images": int(len(x)),
               "kernels": {key: compare_with_litert(model, raw, x, kernels, y)
                           for key, (model, kernels) in cases.items()}}  # fmt: skip
        row["costs"] = {f"@{b}": cost_point(network, b, args.repeats, args.seed, x)
                        for b in (1, 16)}  # fmt: skip
        out[name] = row
    return out


def _parameters(network) -> int:
    return int(sum(layer.weight.size + layer.bias.size for layer in network.layers
                   if hasattr(layer, "weight")))  # fmt: skip


def peak_resident_mb() -> float:
    """This process's peak resident set (VmHWM: reset by exec, unlike ru_maxrss, which a
    child started from a large parent inherits), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(kind: str, batch: int) -> dict:
    """One memory probe in this process: build, forward, prove, then verify."""
    rss = peak_resident_mb
    baseline = rss()
    started = time.perf_counter()
    network = random_network(kind, seed=0) if kind in ARCHITECTURES else single_layer(kind)
    x = np.random.default_rng(0).integers(0, 128, size=(batch, *network.input_shape))
    network.accumulator_bounds  # noqa: B018 — part of building
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    values = network.forward(x)
    forward_s = time.perf_counter() - started
    started = time.perf_counter()
    messages = P.prove_noninteractive(network, x, values)
    prove_s = time.perf_counter() - started
    prover_peak = rss()
    del values
    started = time.perf_counter()
    P.verify_noninteractive(network, x, messages)
    verify_s = time.perf_counter() - started
    return {"probe": kind, "batch": batch, "parameters": _parameters(network),
            "build_s": build_s, "forward_s": forward_s, "extra_prover_s": prove_s,
            "verify_s": verify_s, "baseline_mb": baseline, "prover_peak_mb": prover_peak,
            "peak_mb": rss(),
            "proof_kb": P.proof_size(messages)["total"] / 1000}  # fmt: skip


def run_probe_child(kind: str, batch: int) -> dict:
    progress.stage(f"[int8] memory probe {kind} at batch {batch} (a child process)")
    done = subprocess.run([sys.executable, __file__, "--probe", kind, "--probe-batch", str(batch)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timings: medians of this many")
    parser.add_argument("--lenet-epochs", type=int, default=8)
    parser.add_argument("--no-timit", action="store_true", help="skip the TIMIT shape")
    parser.add_argument("--no-probes", action="store_true", help="skip the memory probes")
    parser.add_argument("--no-litert", action="store_true", help="skip the .tflite imports")
    parser.add_argument("--litert-images", type=int, default=256,
                        help="images compared with LiteRT per fixture")  # fmt: skip
    parser.add_argument("--points", type=int, default=None,
                        help="only the first N cost points (a reduced run)")  # fmt: skip
    parser.add_argument("--probe", choices=sorted(PROBES), help=argparse.SUPPRESS)
    parser.add_argument("--probe-batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("results/int8"))
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.probe_batch)))
        return
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"seed": args.seed, "accuracy": accuracy_part(args), "costs": {}}
    for name, batch in progress.bar(COST_POINTS[: args.points], desc="int8 cost points"):
        progress.stage(f"[int8] {name} at batch {batch}")
        results["costs"][f"{name}@{batch}"] = cost_point(random_network(name, seed=args.seed),
                                                        batch, args.repeats, args.seed)  # fmt: skip
    if not args.no_timit:
        progress.stage("[int8] TIMIT shape with ReLU (batch 512, 1845-2000-2000-2000-183)")
        results["costs"]["timit@512"] = cost_point(timit_relu(seed=args.seed), 512, args.repeats,
                                                   args.seed)  # fmt: skip
    if not args.no_litert:
        results["litert"] = litert_part(args)
    if not args.no_probes:
        results["probes"] = {kind: run_probe_child(kind, batch) for kind, batch in PROBES.items()}
    results["zkcnn"], results["deepprove_cnn264k"] = ZKCNN, DEEPPROVE_CNN264K
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Verifiable inference for int8 networks — seed {args.seed}")
    acc = results["accuracy"]
    rows = [[name, f"{m['float_accuracy']:.4f}", f"{m['per_tensor']['accuracy']:.4f}",
             f"{m['per_channel']['accuracy']:.4f}", f"{m['per_tensor']['agreement']:.4f}",
             f"{m['loss_pt']:+.2f}"] for name, m in acc["models"].items()]  # fmt: skip
    title = f"Post-training quantisation on {acc['dataset']} ({acc['test_size']} test images)"
    report.add_table(title, ["model", "float", "int8 per tensor", "int8 per channel",
                             "agreement with float", "loss (pt)"], rows)  # fmt: skip
    rows = []
    for key, c in results["costs"].items():
        rows.append([key, f"{c['parameters']:,}", f"{c['int8_forward_s'] * 1000:.1f}",
                     f"{c['extra_prover_s'] * 1000:.1f}", f"{c['execute_prove_s'] * 1000:.1f}",
                     f"{c['verify_s'] * 1000:.1f}", f"{c['int8_over_torch']:.2f}",
                     f"{c['extra_prover_over_forward']:.2f}", f"{c['verify_over_forward']:.2f}",
                     f"{c['proof_kb']:.1f}", f"{c['auxiliary_kb']:.1f}",
                     f"{c['soundness_bits']:.1f}"])  # fmt: skip
    report.add_table("Costs (one thread, medians; random int8 weights)",
                     ["shape@batch", "parameters", "int8 forward ms", "extra prover ms",
                      "execute + prove ms", "verify ms", "int8/torch", "prover/forward",
                      "verify/forward", "proof KB", "of which in the clear KB", "FS bits"],
                     rows)  # fmt: skip
    if results.get("litert"):
        _litert_tables(report, results["litert"])
    for kind, p in results.get("probes", {}).items():
        report.add_text(
            f"Probe {kind} at batch {p['batch']} ({p['parameters']:,} parameters): build "
            f"{p['build_s']:.2f} s, forward {p['forward_s']:.2f} s, extra prover "
            f"{p['extra_prover_s']:.2f} s, verify {p['verify_s']:.2f} s; peak RSS "
            f"{p['prover_peak_mb']:.0f} MB after proving, {p['peak_mb']:.0f} MB after "
            f"verifying (the interpreter and libraries alone: {p['baseline_mb']:.0f} MB)."
        )
    costs = results["costs"]
    report.add_figure("costs.png", bar_plot(
        {key: c["execute_prove_s"] for key, c in costs.items()},
        title="Execute + prove, seconds (one thread)", ylabel="s"),
        "Execute + prove time per shape.")  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[int8] wrote {args.out / 'report.md'}")


def _litert_tables(report: Report, litert: dict) -> None:
    rows = []
    for name, row in litert.items():
        for kernels, c in row["kernels"].items():
            accuracy = "—"
            if "vtrust_accuracy" in c:
                accuracy = f"{c['vtrust_accuracy']:.4f} / {c['litert_accuracy']:.4f}"
            logits = f"{c['logit_mismatches']} of {c['logit_values']}"
            rows.append([name, kernels, f"{c['images']} ({row['data']})",
                         str(sum(c["layers"].values())), logits,
                         f"{c['argmax_agreement']:.4f}", accuracy])  # fmt: skip
    report.add_table("Imported .tflite models against LiteRT's kernels (int8 values that differ)",
                     ["model", "LiteRT kernels", "images", "activations", "logits",
                      "argmax agreement", "accuracy vtrust / LiteRT"], rows)  # fmt: skip
    rows = []
    for name, row in litert.items():
        for key, c in row["costs"].items():
            rows.append([f"{name}{key}", f"{c['extra_prover_s'] * 1000:.1f}",
                         f"{c['verify_s'] * 1000:.1f}", f"{c['proof_kb']:.1f}",
                         f"{c['soundness_bits']:.1f}"])  # fmt: skip
    report.add_table("Proving the imported models (one thread, medians)",
                     ["model@batch", "extra prover ms", "verify ms", "proof KB", "FS bits"],
                     rows)  # fmt: skip


if __name__ == "__main__":
    run_study(main)
