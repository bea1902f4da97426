"""``vtrust int8 quantize | prove | verify``: verifiable inference for int8 networks."""

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
              help="A trained vtrust model file (a ReLU network).")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The int8 network file to write.")
@click.option("--per-channel", is_flag=True, help="One weight scale per output channel.")
@click.option("--calibration", type=click.IntRange(min=1), default=512, show_default=True,
              help="Calibration images (from the victim split).")  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def quantize(model_file, out, per_channel, calibration, data, as_json):
    """Post-training int8 quantisation; reports float against integer accuracy."""
    from vtrust.models import accuracy, load_with_splits
    from vtrust.proofs.int8.files import save_network
    from vtrust.proofs.int8.ptq import quantize_model

    loaded, splits = load_with_splits(model_file, data)
    quantized = quantize_model(loaded.model, splits.victim.x[:calibration], per_channel=per_channel)
    int_accuracy = float((quantized.predict(splits.test.x) == splits.test.y).mean())
    result = {"float_accuracy": accuracy(loaded.model, splits.test), "int8_accuracy": int_accuracy,
              "network_sha256": save_network(out, quantized), "network": str(out),
              "layers": list(quantized.network.names)}  # fmt: skip
    if as_json:
        emit_json(result)
        return
    click.echo(f"float accuracy {result['float_accuracy']:.4f}, int8 accuracy "
               f"{int_accuracy:.4f}; wrote {out}")  # fmt: skip


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
