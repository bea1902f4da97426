"""The main job, ``vtrust demo``: the whole pipeline on the embedded digits data.

Stages: train the four default victims (MLP, CNN, softmax regression, quadratic
network); run the (defense, attack) matrix against the MLP at small budgets; prove and
verify a batch of the quadratic network's predictions; embed a static watermark and run
the CI gate's removal attacks against it; scramble and seal the CNN, run it the Slalom
way with a tampering host. Everything lands in one ``report.md`` with plots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust._io import output_folder
from vtrust.data import load_dataset
from vtrust.models import save_model
from vtrust.models.recipes import train_model
from vtrust.report import Report, bar_plot, line_plot

DEMO_ARCHES = ("mlp", "cnn", "softmax", "quad")


def run_demo(out_dir: str | Path, *, dataset: str = "digits", seed: int = 0) -> dict[str, Any]:
    """Run the demo into ``out_dir`` (created, with ``models/`` inside); return the
    report's JSON data."""
    out = output_folder(out_dir)
    output_folder(out / "models")
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
            zoom=True,
        ),
        "test accuracy of each victim",
    )
    report.add_figure(
        "training-loss.png",
        line_plot(curves, title="Training loss", xlabel="epoch", ylabel="loss", logx=False),
        "training loss per epoch",
    )
    data: dict[str, Any] = {"dataset": dataset, "seed": seed, "models": models}
    data["matrix"] = _matrix_stage(report, out, dataset, seed)
    data["proof"] = _proof_stage(report, out / "models" / f"{dataset}-quad.safetensors", seed)
    data["watermark_gate"] = _gate_stage(report, out, dataset, seed)
    data["protection"] = _protection_stage(
        report, out / "models" / f"{dataset}-cnn.safetensors", seed
    )
    data["seconds"] = time.perf_counter() - started
    report.write(out, data)
    progress.stage(f"[demo] wrote {out / 'report.md'} in {time.perf_counter() - started:.1f} s")
    return data


DEMO_DEFENSES = ("none", "default", "prada", "shift", "round-2", "top-1")
DEMO_ATTACKS = ("random-uniform-2k", "knockoff-natural-2k", "jbda", "knockoff-attacker-400")
DEMO_BUDGET = 300
GATE_ATTACKS = ("prune-global", "ftll", "quantize")


def _matrix_stage(report: Report, out: Path, dataset: str, seed: int) -> dict[str, Any]:
    from vtrust.catalog import load_entry
    from vtrust.evaluation.matrix import MatrixSpec, run_matrix
    from vtrust.evaluation.report import summarise, write_report

    progress.stage("[demo] evaluation matrix against the MLP")
    spec = MatrixSpec(str(out / "models" / f"{dataset}-mlp.safetensors"), DEMO_DEFENSES,
                      DEMO_ATTACKS, seeds=1, budget=DEMO_BUDGET)  # fmt: skip
    result = run_matrix(spec, out / "matrix", workers=2)
    write_report(result, out / "matrix")
    summary = summarise(result)
    members = ", ".join(load_entry("defenses", "default").params.members)
    report.add_table(
        f"Extraction attacks against the MLP behind each defense ({DEMO_BUDGET} queries; "
        "thief fidelity; * = the defense flagged the attacker, † = it stopped answering; "
        f"`default` is the recommended preset: {members})",
        ["defense", *DEMO_ATTACKS],
        [[d, *(f"{summary[d][a]['fidelity']:.3f}" + ("*" if summary[d][a]["flag_rate"] else "")
               + ("†" if summary[d][a]["refusal_rate"] else "")
               for a in DEMO_ATTACKS)] for d in DEMO_DEFENSES],
    )  # fmt: skip
    report.add_text("Heatmaps and per-cell results: [matrix/report.md](matrix/report.md).")
    return summary


def _proof_stage(report: Report, model_file: Path, seed: int) -> dict[str, Any]:
    from vtrust.catalog import load_entry
    from vtrust.models import load_with_splits
    from vtrust.proofs import field as F
    from vtrust.proofs.protocol import (
        PreparedVerifier,
        prove_noninteractive,
        verify_noninteractive,
    )
    from vtrust.proofs.quantize import (
        circuit_predictions,
        compile_network,
        finetune_quantized,
        quantize_inputs,
    )

    progress.stage("[demo] verifiable inference: quantise, prove and verify a batch")
    loaded, splits = load_with_splits(model_file)
    model = loaded.model
    params = load_entry("circuits", "quad-digits").params
    tuned = finetune_quantized(model, splits.victim, params.spec,
                               epochs=params.finetune_epochs, seed=seed)  # fmt: skip
    compiled = compile_network(tuned, splits.input_shape, params.spec, params.batch)
    circuit = compiled.circuit
    images = splits.test.x[: circuit.batch]
    x = circuit.pad_inputs(F.elements(quantize_inputs(images, compiled.spec)))
    started = time.perf_counter()
    outputs, messages = prove_noninteractive(circuit, x)
    prove_s = time.perf_counter() - started
    prepared = PreparedVerifier.prepare(circuit)
    started = time.perf_counter()
    verified = verify_noninteractive(prepared, x, outputs, messages)
    first_verify_s = time.perf_counter() - started
    started = time.perf_counter()  # again, with the kernels compiled
    verify_noninteractive(prepared, x, outputs, messages)
    verify_s = time.perf_counter() - started
    predictions = F.signed(verified[: len(images), : circuit.n_outputs]).argmax(axis=1)
    accuracy = float((circuit_predictions(compiled, splits.test.x) == splits.test.y).mean())
    result = {
        "circuit_accuracy": accuracy,
        "batch": len(images),
        "verified_accuracy": float((predictions == splits.test.y[: len(images)]).mean()),
        "prove_s": prove_s,
        "first_verify_s": first_verify_s,
        "verify_s": verify_s,
        "proof_kb": len(str(messages)) / 1024,
        "bound_bits": max(compiled.bound_bits),
    }
    report.add_text(
        f"**Verifiable inference.** The quadratic network, quantised (circuit `quad-digits`, "
        f"largest value 2^{result['bound_bits']:.1f} < p/2), classifies the test split with "
        f"accuracy {accuracy:.4f} over F_p. A batch of {len(images)} predictions was proved in "
        f"{prove_s:.2f} s (the process's first proof: includes compiling the field kernels) "
        f"and verified in {first_verify_s * 1000:.1f} ms the first time, "
        f"{verify_s * 1000:.1f} ms the second "
        f"(proof ≈ {result['proof_kb']:.1f} KB); accuracy of the verified batch "
        f"{result['verified_accuracy']:.4f}."
    )
    return result


def _gate_stage(report: Report, out: Path, dataset: str, seed: int) -> dict[str, Any]:
    from vtrust.catalog import load_entry
    from vtrust.evaluation.watermark import evaluate_robustness
    from vtrust.models import load_with_splits
    from vtrust.watermark.embedding import embed_watermark
    from vtrust.watermark.keys import load_key

    progress.stage("[demo] watermark: embed a static mark in the MLP, run the CI gate")
    marked, key_file = out / "models" / f"{dataset}-mlp-marked.safetensors", out / "mlp.key.json"
    embedded = embed_watermark(out / "models" / f"{dataset}-mlp.safetensors", marked, key_file,
                               kind="static", seed=seed)  # fmt: skip
    loaded, splits = load_with_splits(marked)
    model = loaded.model
    attacks = [load_entry("attacks", a) for a in GATE_ATTACKS]
    gate = evaluate_robustness(model, load_key(key_file), splits, attacks, seed=seed)
    rows = [["baseline", "verified" if gate["baseline"]["owned"] else "NOT verified"]]
    rows += [[a["attack"], "survives" if a["watermark_survives"] else "removed"]
             for a in gate["attacks"]]  # fmt: skip
    report.add_table(
        f"Watermark gate (static mark, accuracy {embedded['accuracy_before']:.4f} → "
        f"{embedded['accuracy_after']:.4f}): {'PASS' if gate['survives_all'] else 'FAIL'}",
        ["check", "watermark"], rows,
    )  # fmt: skip
    return {"survives_all": gate["survives_all"], "embedded": embedded, "gate": gate}


def _protection_stage(report: Report, model_file: Path, seed: int) -> dict[str, Any]:
    import torch

    from vtrust.enclave.slalom import SlalomNetwork
    from vtrust.evaluation.enclave import tamper_detection
    from vtrust.keying import ProtectionKey
    from vtrust.models import accuracy, load_with_splits
    from vtrust.models.files import model_sha256
    from vtrust.protect.scramble import new_salt, scramble, unscramble
    from vtrust.protect.seal import open_bytes, seal_bytes

    progress.stage("[demo] scrambling, sealing and Slalom on the CNN")
    loaded, splits = load_with_splits(model_file)
    model = loaded.model
    key = ProtectionKey.generate()  # a fresh secret, as `vtrust keygen` makes
    salt = new_salt()
    scrambled = scramble(model, key, salt)
    sealed = seal_bytes(model_file.read_bytes(), key)
    # Slalom's outputs equal forward_plain whatever its pads: no seed is needed for that
    net = SlalomNetwork(model.eval(), torch.from_numpy(splits.victim.x[:512]).float())
    test = torch.from_numpy(splits.test.x).float()
    net.precompute(1, len(test))
    out = net.forward(test)
    tampering = tamper_detection(net, test[:32], trials=20, seed=seed)
    result = {
        "accuracy": accuracy(model, splits.test),
        "scrambled_accuracy": accuracy(scrambled, splits.test),
        "unscrambled_exact": model_sha256(unscramble(scrambled, key, salt)) == model_sha256(model),
        "sealed_roundtrip": open_bytes(sealed, key).data == model_file.read_bytes(),
        "slalom_accuracy": float((out.argmax(1).numpy() == splits.test.y).mean()),
        "slalom_exact": bool(torch.equal(out, net.forward_plain(test))),
        "tampering": tampering,
    }
    report.add_table(
        "Weight-side protections (CNN)",
        ["check", "result"],
        [["accuracy", f"{result['accuracy']:.4f}"],
         ["scrambled copy's accuracy", f"{result['scrambled_accuracy']:.4f}"],
         ["unscrambled bit for bit", result["unscrambled_exact"]],
         ["sealed file opens with the key", result["sealed_roundtrip"]],
         ["Slalom accuracy (identical to the plain quantised network)",
          f"{result['slalom_accuracy']:.4f} ({result['slalom_exact']})"],
         ["tampered results detected", f"{tampering['detected']} / {tampering['trials']}"]],
    )  # fmt: skip
    return result
