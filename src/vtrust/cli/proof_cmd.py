"""``vtrust quantize``, ``vtrust prove`` and ``vtrust verify``: verifiable inference."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vtrust.cli.common import (
    CIRCUIT_HELP,
    CIRCUIT_NAME_HELP,
    OUTPUT_FILE,
    data_option,
    emit_json,
    load_npy,
    report_rejection,
)
from vtrust.cli.common import INPUT_FILE as _FILE


def _verifier_circuit(loaded, circuit_name: str | None, model_file: Path):
    """The circuit entry from the verifier's side: ``--circuit`` if given, else the one
    the model file records it was quantised for (the proof file's own is never used)."""
    from vtrust.catalog import entry_from_json, load_entry
    from vtrust.errors import InputError

    recorded = loaded.metadata.get("quantized_for")
    if circuit_name is not None:
        entry = load_entry("circuits", circuit_name)
        if recorded is not None and recorded.get("params") != entry.to_json()["params"]:
            raise InputError(
                f"{model_file} was quantised for circuit {recorded.get('name')!r} with other "
                f"parameters than {entry.name!r}; quantise it for this circuit first"
            )
        return entry
    if recorded is None:
        raise InputError(
            f"{model_file} records no circuit (not quantised with vtrust quantize): pass --circuit"
        )
    return entry_from_json("circuits", recorded, source=f"{model_file} metadata")


def _compile(model_file: Path, circuit_name: str | None):
    """Load a model file and compile the verifier's circuit for it."""
    from vtrust.models import load_model
    from vtrust.models.files import model_sha256

    loaded = load_model(model_file)
    entry = _verifier_circuit(loaded, circuit_name, model_file)
    compiled = entry.build().compile(loaded.model, loaded.model.spec.input_shape)
    return loaded, entry, compiled, model_sha256(loaded.model)


def _images(input_file: Path, input_shape: tuple[int, ...], batch: int):
    """A .npy batch of real images (N, C, H, W), 1 ≤ N ≤ batch, or InputError."""

    from vtrust.errors import InputError

    images = load_npy(input_file)
    if images.dtype.kind not in "biuf":
        raise InputError(f"{input_file}: images must be real numbers, not {images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise InputError(
            f"{input_file}: images must have shape (N, {input_shape}), got {images.shape}"
        )
    if not 1 <= len(images) <= batch:
        raise InputError(f"a proof covers 1..{batch} images, got {len(images)}")
    return images


@click.command()
@click.option("--model", "model_file", type=_FILE, required=True, help="A trained quad model.")
@click.option("--circuit", "circuit_name", required=True,
              help=CIRCUIT_NAME_HELP)  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The fine-tuned model file.")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Override the entry's.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the fine-tuning's batch order.")  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def quantize(model_file, circuit_name, out, epochs, seed, data, as_json):
    """Quantisation-aware fine-tuning so the compiled circuit keeps the model's accuracy."""
    from vtrust.catalog import load_entry
    from vtrust.models import accuracy, load_with_splits, save_model
    from vtrust.proofs.quantize import circuit_predictions, compile_network, finetune_quantized

    entry = load_entry("circuits", circuit_name)
    params = entry.params
    loaded, splits = load_with_splits(model_file, data)
    tuned = finetune_quantized(
        loaded.model,
        splits.victim,
        params.spec,
        epochs=params.finetune_epochs if epochs is None else epochs,
        seed=seed,
    )
    compiled = compile_network(tuned, splits.input_shape, params.spec, params.batch)
    circuit_accuracy = float((circuit_predictions(compiled, splits.test.x) == splits.test.y).mean())
    result = {
        "float_accuracy": accuracy(loaded.model, splits.test),
        "circuit_accuracy": circuit_accuracy,
        "bound_bits": compiled.bound_bits,
        "circuit": entry.name,
    }
    metadata = {k: v for k, v in loaded.metadata.items() if k in ("dataset", "training")}
    metadata.update(test_accuracy=result["float_accuracy"], quantized_for=entry.to_json())
    result["model_sha256"] = save_model(out, tuned, metadata)
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"float accuracy {result['float_accuracy']:.4f}, circuit accuracy "
        f"{circuit_accuracy:.4f}; wrote {out}"
    )


@click.command()
@click.option("--model", "model_file", type=_FILE, required=True,
              help="The quantised model file (`vtrust quantize`).")  # fmt: skip
@click.option("--circuit", "circuit_name", default=None, help=CIRCUIT_HELP)
@click.option("--input", "input_file", type=_FILE, required=True,
              help="A .npy of images (N, C, H, W), float in [0, 1], N at most the circuit's "
              "batch (64 for quad-digits).")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="Where to write the proof (JSON).")
@click.option(
    "--protocol",
    type=click.Choice(["fused", "layered"]),
    default="fused",
    show_default=True,
    help="fused: a linear layer over x² in one sum-check; layered: every layer on its own.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prove(model_file, circuit_name, input_file, out, protocol, as_json):
    """Compute the outputs for a batch of inputs and a proof that the model produced them."""
    from vtrust.errors import InputError
    from vtrust.proofs import field as F
    from vtrust.proofs.files import proof_document, write_proof
    from vtrust.proofs.protocol import prove_noninteractive
    from vtrust.proofs.quantize import quantize_inputs

    loaded, entry, compiled, digest = _compile(model_file, circuit_name)
    if "quantized_for" not in loaded.metadata:
        raise InputError(f"{model_file} is not quantised for a circuit: run vtrust quantize first")
    circuit = compiled.circuit
    images = _images(input_file, loaded.model.spec.input_shape, circuit.batch)
    x = circuit.pad_inputs(F.elements(quantize_inputs(images, compiled.spec)))
    started = time.perf_counter()
    outputs, messages = prove_noninteractive(circuit, x, protocol=protocol, count=len(images))
    seconds = time.perf_counter() - started
    document = proof_document(
        circuit=circuit,
        circuit_entry=entry.to_json(),
        model_sha256=digest,
        inputs=x,
        count=len(images),
        outputs=outputs,
        messages=messages,
        protocol=protocol,
    )
    path = write_proof(out, document)
    logits = F.signed(outputs[: len(images), : circuit.n_outputs])
    result = {
        "predictions": logits.argmax(axis=1).tolist(),
        "proof": str(path),
        "proof_kb": path.stat().st_size / 1024,
        "prove_seconds": seconds,
        "circuit_sha256": circuit.sha256(),
        "protocol": protocol,
    }
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"predictions {result['predictions']}; proof {path} "
        f"({result['proof_kb']:.1f} KB, {seconds:.2f} s)"
    )


@click.command()
@click.option("--model", "model_file", type=_FILE, required=True,
              help="Your quantised model file: the verifier's own weights.")  # fmt: skip
@click.option("--proof", "proof_file", type=_FILE, required=True,
              help="The proof file (JSON) `vtrust prove` wrote.")  # fmt: skip
@click.option("--circuit", "circuit_name", default=None, help=CIRCUIT_HELP)
@click.option(
    "--input", "input_file", type=_FILE, default=None,
    help="The images you sent (.npy): the proof must be about exactly these.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(model_file, proof_file, circuit_name, input_file, as_json):
    """Check a proof against your model, circuit and inputs; exit 0 accepted, 1 rejected,
    2 bad input. The circuit and inputs come from your side, never from the proof."""
    from vtrust.errors import ProofRejected
    from vtrust.proofs.files import read_header
    from vtrust.proofs.verification import check_document

    loaded, entry, compiled, digest = _compile(model_file, circuit_name)
    images = None
    if input_file is not None:
        images = _images(input_file, loaded.model.spec.input_shape, compiled.circuit.batch)
    try:
        verdict = check_document(read_header(proof_file), compiled, digest, images)
    except ProofRejected as exc:
        return report_rejection(exc, as_json)
    checked = (
        "outputs = circuit(your inputs)"
        if verdict.inputs_checked
        else "only outputs = circuit(the inputs in the proof file): pass --input to check "
        "they are the ones you sent"
    )
    result = {
        "accepted": True,
        "predictions": verdict.predictions,
        "circuit": entry.name,
        "circuit_sha256": compiled.circuit.sha256(),
        "inputs_checked": verdict.inputs_checked,
        "checked": checked,
        "soundness_bits": verdict.soundness_bits,
        "precompute_seconds": verdict.precompute_seconds,
        "verify_seconds": verdict.verify_seconds,
    }
    seconds, bits = verdict.verify_seconds, verdict.soundness_bits
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"accepted: predictions {result['predictions']} ({seconds * 1000:.1f} ms); checked "
            f"{checked}; circuit {entry.name} (yours), {bits:.0f}-bit "
            "non-interactive soundness"
        )
    return 0
