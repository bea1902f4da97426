"""``vtrust int8 quantize | import | prove | verify | attack``: verifiable inference for
int8 networks."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vtrust.cli.common import (
    INPUT_FILE,
    OUTPUT_FILE,
    Group,
    data_option,
    emit_json,
    load_npy,
    model_options,
    report_rejection,
)


@click.group(cls=Group)
def int8() -> None:
    """Int8 networks (ReLU, max-pool, requantisation) and their proofs."""


def _images(input_file: Path, input_shape: tuple[int, ...]):
    """A .npy batch of float images (N, C, H, W) in [0, 1], or InputError."""
    from vtrust.errors import InputError

    images = load_npy(input_file)
    if images.dtype.kind not in "biuf":
        raise InputError(f"{input_file}: images must be real numbers, not {images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape) or not len(images):
        raise InputError(f"{input_file}: images must have shape (N, {input_shape}), got "
                         f"{images.shape}")  # fmt: skip
    return images


@int8.command("quantize")
@click.option("--model", "model_file", type=INPUT_FILE, required=True,
              help="A trained ReLU network: a vtrust model file, ONNX, or any white-box "
                   "target (a state dict with --arch-module …).")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The int8 network file to write.")
@click.option("--per-channel", is_flag=True, help="One weight scale per output channel.")
@click.option("--calibration", type=click.IntRange(min=1), default=512, show_default=True,
              help="Calibration images (from the victim split).")  # fmt: skip
@data_option
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def quantize(model_file, out, per_channel, calibration, data, as_json, options):
    """Post-training int8 quantisation; reports float against integer accuracy."""
    from vtrust.proofs.int8.files import save_network
    from vtrust.proofs.int8.onnx_chain import quantizable_module
    from vtrust.proofs.int8.ptq import quantize_model
    from vtrust.targets import load_target_and_splits

    target, splits = load_target_and_splits(model_file, data, options)
    module = quantizable_module(target, splits.victim.x[:calibration])
    quantized = quantize_model(module, splits.victim.x[:calibration], per_channel=per_channel)
    int_accuracy = float((quantized.predict(splits.test.x) == splits.test.y).mean())
    float_accuracy = float((target.predict(splits.test.x) == splits.test.y).mean())
    result = {"float_accuracy": float_accuracy, "int8_accuracy": int_accuracy,
              "network_sha256": save_network(out, quantized), "network": str(out),
              "format": target.format, "layers": list(quantized.network.names)}  # fmt: skip
    if as_json:
        emit_json(result)
        return
    click.echo(f"float accuracy {float_accuracy:.4f}, int8 accuracy {int_accuracy:.4f}; "
               f"wrote {out}")  # fmt: skip


@int8.command("import")
@click.option("--model", "model_file", type=INPUT_FILE, required=True,
              help="A fully integer LiteRT / TFLite model (.tflite, int8 in and out).")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The int8 network file to write.")
@click.option("--kernels", type=click.Choice(["reference", "builtin"]), default="reference",
              show_default=True,
              help="Whose rounding to reproduce, and compare with: TFLite's reference kernels "
                   "or the optimised ones (XNNPACK, LiteRT's default delegate, rounds in "
                   "float and is reproduced by neither).")  # fmt: skip
@click.option("--images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Test images to compare on.")  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_(model_file, out, kernels, images, data, as_json):
    """Import a .tflite int8 model exactly (its integer arithmetic, not a re-quantisation)
    and report how many int8 values differ from LiteRT's on test images."""
    from vtrust.data import load_dataset
    from vtrust.errors import ModelFileError
    from vtrust.proofs.int8.files import save_network
    from vtrust.proofs.int8.litert import compare_with_litert, import_tflite
    from vtrust.targets.options import read_model_bytes
    from vtrust.targets.sniff import sniff

    raw = read_model_bytes(model_file)
    kind = sniff(raw)
    if kind == "unknown":
        raise ModelFileError(f"{model_file}: not a TFLite flatbuffer")
    if kind != "tflite":
        hint = {"onnx": " (ONNX QDQ models requantise in float; they are not imported)",
                "vtrust": "; a vtrust model is quantised with `vtrust int8 quantize`"}  # fmt: skip
        raise ModelFileError(f"{model_file}: a {kind} file, not a .tflite model"
                             f"{hint.get(kind, '')}")  # fmt: skip
    imported = import_tflite(raw, str(model_file), kernels)
    network = imported.network
    splits = load_dataset(data or "digits", input_shape=network.input_shape,
                          n_classes=network.n_outputs)  # fmt: skip
    test = splits.test
    x = imported.quantized.quantize_inputs(test.x[:images])
    comparison = compare_with_litert(imported, raw, x, kernels, test.y[:images])
    result = {"network_sha256": save_network(out, imported.quantized), "network": str(out),
              **comparison}  # fmt: skip
    if as_json:
        emit_json(result)
        return
    verdict = ("every int8 value equal" if comparison["exact"] else
               f"{comparison['logit_mismatches']} of {comparison['logit_values']} logits and "
               f"{sum(comparison['layers'].values())} activations differ")  # fmt: skip
    click.echo(f"imported {len(network.layers)} layers; against LiteRT's {kernels} kernels on "
               f"{comparison['images']} test images: {verdict} (accuracy "
               f"{comparison['vtrust_accuracy']:.4f} against LiteRT's "
               f"{comparison['litert_accuracy']:.4f}); wrote {out}")  # fmt: skip


@int8.command("prove")
@click.option("--network", "network_file", type=INPUT_FILE, required=True,
              help="The int8 network file (`vtrust int8 quantize`).")  # fmt: skip
@click.option("--input", "input_file", type=INPUT_FILE, required=True,
              help="A .npy of images (N, C, H, W), float in [0, 1].")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="Where to write the proof (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prove(network_file, input_file, out, as_json):
    """Compute the outputs for a batch of images and a proof that the network did."""
    from vtrust.proofs.int8.files import load_network, proof_document, write_proof
    from vtrust.proofs.int8.protocol import proof_size, prove_noninteractive

    quantized = load_network(network_file)
    network = quantized.network
    x = quantized.quantize_inputs(_images(input_file, network.input_shape))
    started = time.perf_counter()
    values = network.forward(x)
    messages = prove_noninteractive(network, x, values)
    seconds = time.perf_counter() - started
    path = write_proof(out, proof_document(network, x, messages))
    logits = values[-1].reshape(len(x), -1) * quantized.output_scale
    result = {"predictions": logits.argmax(axis=1).tolist(), "proof": str(path),
              "proof_kb": path.stat().st_size / 1024,
              "compact_kb": proof_size(messages)["total"] / 1000,
              "prove_seconds": seconds, "network_sha256": network.sha256()}  # fmt: skip
    if as_json:
        emit_json(result)
        return
    click.echo(f"predictions {result['predictions']}; proof {path} ({result['proof_kb']:.1f} KB "
               f"as JSON, {seconds:.2f} s)")  # fmt: skip


@int8.command("verify")
@click.option("--network", "network_file", type=INPUT_FILE, required=True,
              help="Your int8 network file: the verifier's own weights.")  # fmt: skip
@click.option("--proof", "proof_file", type=INPUT_FILE, required=True,
              help="The proof file `vtrust int8 prove` wrote.")  # fmt: skip
@click.option("--input", "input_file", type=INPUT_FILE, default=None,
              help="The images you sent (.npy): the proof must be about these.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(network_file, proof_file, input_file, as_json):
    """Check a proof against your network and inputs; exit 0 accepted, 1 rejected, 2 bad
    input. The network and inputs come from your side, never from the proof."""
    import numpy as np

    from vtrust.errors import ProofRejected
    from vtrust.proofs.int8.files import load_network, read_proof
    from vtrust.proofs.int8.protocol import soundness, verify_noninteractive

    quantized = load_network(network_file)
    network = quantized.network
    mine = None
    if input_file is not None:
        mine = quantized.quantize_inputs(_images(input_file, network.input_shape))
    started = time.perf_counter()
    try:
        x, messages = read_proof(proof_file, network)
        if mine is not None and not np.array_equal(mine, x):
            raise ProofRejected("the proof is about other inputs than yours")
        verified = verify_noninteractive(network, x, messages)
    except ProofRejected as exc:
        return report_rejection(exc, as_json)
    seconds = time.perf_counter() - started
    logits = verified.outputs.reshape(len(x), -1) * quantized.output_scale
    checked = ("outputs = network(your inputs)" if mine is not None else
               "only outputs = network(the inputs in the proof file): pass --input to check "
               "they are the ones you sent")  # fmt: skip
    bits = soundness(network, len(x))["bits"]
    result = {"accepted": True, "predictions": logits.argmax(axis=1).tolist(),
              "inputs_checked": mine is not None, "checked": checked,
              "soundness_bits": bits, "verify_seconds": seconds}  # fmt: skip
    if as_json:
        emit_json(result)
    else:
        click.echo(f"accepted: predictions {result['predictions']} ({seconds * 1000:.1f} ms); "
                   f"checked {checked}; {bits:.0f}-bit non-interactive soundness")  # fmt: skip
    return 0


@int8.command("attack")
@click.option("--network", "network_file", type=INPUT_FILE, required=True,
              help="Your int8 network file: the verifier under attack.")  # fmt: skip
@click.option("--input", "input_file", type=INPUT_FILE, default=None,
              help="Images (.npy, float in [0, 1]); default: 2 random inputs.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attack(network_file, input_file, as_json):
    """Run every dishonest prover of the attack catalog against your network's verifier,
    in both modes; exit 0 when every cheat is rejected, 1 when one is accepted."""
    import numpy as np

    from vtrust.attacks.int8_cheats import attack_verifier
    from vtrust.proofs.int8.files import load_network

    quantized = load_network(network_file)
    network = quantized.network
    if input_file is not None:
        x = quantized.quantize_inputs(_images(input_file, network.input_shape))
    else:  # not a secret: the cheats must fail on any input
        low, high = network.input_range
        x = np.random.default_rng(0).integers(low, high + 1, (2, *network.input_shape))
    rows = attack_verifier(network, x)
    broken = [r for r in rows if r["accepted"]]
    if as_json:
        emit_json({"rows": rows, "broken": len(broken)})
    else:
        for r in rows:
            verdict = ("ACCEPTED" if r["accepted"] else "rejected" if r["applicable"]
                       else "not applicable")  # fmt: skip
            click.echo(f"{r['attack']:<18} {r['mode']:<12} {verdict}: {r['reason']}")
        click.echo(f"{len(broken)} of {len(rows)} cheats accepted")
    return 1 if broken else 0
