"""``vtrust enclave``: split execution, device identities, quotes and their checks."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import INPUT_FILE as _FILE
from vtrust.cli.common import OUTPUT_FILE, SPLIT_HELP, Group, data_option, emit_json

CALIBRATION = 512  # victim-split examples that fix Slalom's activation scales


def _runner(model_file: Path, split: str, seed: int | None, data: str | None = None):
    """The model file's split runner (SplitModel or SlalomNetwork) and its splits
    (``data``: a dataset spec overriding the recorded one)."""
    import torch

    from vtrust.cli.common import target_splits, zoo_model
    from vtrust.enclave.slalom import SlalomNetwork
    from vtrust.enclave.split import SplitModel, SplitSpec

    spec = SplitSpec.parse(split)
    target, splits = target_splits(model_file, data)
    model = zoo_model(target, "split execution in the enclave (it splits the zoo layers)")
    model.eval()
    if spec.mode == "slalom":
        calibration = torch.from_numpy(splits.victim.x[:CALIBRATION]).float()
        return SlalomNetwork(model, calibration, seed=seed), model, splits
    return SplitModel(model, spec), model, splits


def _read_json(path: Path, what: str):
    from vtrust._io import parse_json
    from vtrust.errors import AttestationError

    try:
        return parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise AttestationError(f"{path}: not a readable {what} (JSON)") from None


@click.group(cls=Group)
def enclave() -> None:
    """Simulated enclave: split execution and attestation."""


@enclave.command("run")
@click.option("--model", "model_file", type=_FILE, required=True, help="A vtrust model file.")
@click.option("--split", default="all", show_default=True, help=SPLIT_HELP)
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images per enclave call.")  # fmt: skip
@click.option("--seed", type=int, default=None,
              help="Reproducible Slalom pads and checks (INSECURE: tests, experiments)."
              )  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run(model_file, split, batch, seed, data, as_json) -> None:
    """Run the test split through the split model; compare with the plain model."""
    import torch

    from vtrust.enclave.slalom import SlalomNetwork

    runner, model, splits = _runner(model_file, split, seed, data)
    x = torch.from_numpy(splits.test.x).float()
    batches = [x[i : i + batch] for i in range(0, len(x), batch)]
    outputs, reference = [], []
    for chunk in batches:
        if isinstance(runner, SlalomNetwork):
            runner.precompute(1, len(chunk))
            outputs.append(runner.forward(chunk))
            reference.append(runner.forward_plain(chunk))
        else:
            outputs.append(runner.forward(chunk))
            with torch.no_grad():
                reference.append(model(chunk))
    out, ref = torch.cat(outputs), torch.cat(reference)
    predictions = out.argmax(1).numpy()
    ledger = runner.enclave.ledger.to_json() if runner.enclave is not None else {}
    result = {
        "split": split,
        "examples": len(x),
        "same_predictions_as_plain": bool((predictions == ref.argmax(1).numpy()).all()),
        "identical_outputs": bool(torch.equal(out, ref)),
        "accuracy": float((predictions == splits.test.y).mean()),
        "measurement": runner.enclave.measurement if runner.enclave is not None else None,
        "modelled_seconds": runner.modelled_seconds(),
        "ledger": ledger,
    }
    if isinstance(runner, SlalomNetwork):
        with torch.no_grad():
            float_predictions = model(x).argmax(1).numpy()
        result["agreement_with_float"] = float((predictions == float_predictions).mean())
        result["freivalds_error_bound"] = runner.error_bound
        result["insecure_seed"] = seed  # pads and checks known to whoever knows it
    if as_json:
        emit_json(result)
        return
    if seed is not None and split == "slalom":
        click.echo(f"warning: INSECURE run: Slalom's pads and checks derive from seed {seed}")
    click.echo(
        f"{split}: {len(x)} examples, accuracy {result['accuracy']:.4f}, predictions "
        f"{'equal' if result['same_predictions_as_plain'] else 'DIFFER from'} the plain model's"
    )
    if ledger:
        click.echo(
            f"  enclave calls {ledger['calls']}, bytes in {ledger['bytes_in']}, out "
            f"{ledger['bytes_out']}, modelled {result['modelled_seconds'] * 1000:.1f} ms"
        )
        click.echo(f"  measurement {result['measurement']}")


@enclave.command("device")
@click.option("--id", "device", required=True, help="The device's id.")
@click.option(
    "--out", type=OUTPUT_FILE, required=True, help="Private identity (public: OUT.pub.json)."
)
@click.option("--seed", type=int, default=None, help="Reproducible identity (tests only).")
def device_cmd(device, out, seed) -> None:
    """Create a device's attestation identity (Ed25519 and BLS12-381 keys)."""
    from vtrust._io import atomic_write_json
    from vtrust.enclave.attest import DeviceIdentity

    identity = DeviceIdentity.generate(device, seed)
    atomic_write_json(out, identity.private_json())
    public = out.with_name(out.stem + ".pub.json")
    atomic_write_json(public, identity.public.to_json())
    click.echo(f"device {device}: private identity {out}, public keys {public}")


@enclave.command("attest")
@click.option("--model", "model_file", type=_FILE, required=True,
              help="The model whose part the enclave loads.")  # fmt: skip
@click.option("--split", default="all", show_default=True, help=SPLIT_HELP)
@click.option("--device", "device_file", type=_FILE, required=True, help="Private identity.")
@click.option("--nonce", required=True, help="The verifier's nonce (hex).")
@click.option("--scheme", type=click.Choice(["ed25519", "bls12-381"]), default="ed25519",
              show_default=True, help="Signature (BLS: one aggregate per fleet).")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The quote (JSON).")
@data_option
def attest(model_file, split, device_file, nonce, scheme, out, data) -> None:
    """Load the model part into an enclave and sign its measurement with the nonce."""
    from vtrust._io import atomic_write_json
    from vtrust.enclave.attest import DeviceIdentity

    identity = DeviceIdentity.from_json(_read_json(device_file, "device identity"))
    runner, _, _ = _runner(model_file, split, None, data)
    if runner.enclave is None:
        raise click.UsageError("split 'none' has no enclave to attest")
    quote = identity.quote(runner.enclave.measurement, nonce, scheme)
    atomic_write_json(out, quote.to_json())
    click.echo(f"quote for {identity.device}, measurement {quote.measurement[:16]}… → {out}")


@enclave.command("challenge")
@click.option("--state", type=_FILE, required=True, help="This verifier's nonce ledger (JSON).")
def challenge(state) -> None:
    """Issue a fresh nonce (printed) for a device to quote, and record it in --state."""
    from vtrust.enclave.nonces import NonceLedger

    ledger = NonceLedger.load(state)
    nonce = ledger.issue()
    ledger.save(state)
    click.echo(nonce)


@enclave.command("verify-quote")
@click.option("--quote", "quote_file", type=_FILE, required=True,
              help="The quote `enclave attest` wrote.")  # fmt: skip
@click.option("--device-pub", type=_FILE, required=True, help="The device's public keys.")
@click.option("--model", "model_file", type=_FILE, required=True, help="The expected model.")
@click.option("--split", default="all", show_default=True, help=SPLIT_HELP)
@click.option("--state", type=_FILE, required=True,
              help="This verifier's nonce ledger: the quote must answer a nonce issued by "
                   "`vtrust enclave challenge`, at most --max-age old, never used before."
              )  # fmt: skip
@click.option("--max-age", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds a nonce stays valid.")  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_quote(quote_file, device_pub, model_file, split, state, max_age, data, as_json) -> None:
    """Check a quote: signature, expected measurement, fresh nonce. Exit 1 if rejected."""
    from datetime import timedelta

    from vtrust.enclave.attest import DevicePublic, Quote, QuoteVerifier
    from vtrust.enclave.nonces import NonceLedger
    from vtrust.errors import AttestationError

    quote = Quote.from_json(_read_json(quote_file, "quote"))
    device = DevicePublic.from_json(_read_json(device_pub, "device public key"))
    ledger = NonceLedger.load(state)
    runner, _, _ = _runner(model_file, split, None, data)
    if runner.enclave is None:
        raise click.UsageError("split 'none' has no enclave to attest")
    verifier = QuoteVerifier([device], runner.enclave.measurement)
    try:
        ledger.consume(quote.nonce, max_age=timedelta(seconds=max_age))
        ledger.save(state)  # a used nonce is recorded even when the quote then fails
        verifier.expect(quote.nonce)
        verifier.verify(quote)
    except AttestationError as exc:
        if as_json:
            emit_json({"accepted": False, "reason": str(exc)})
        else:
            click.echo(f"rejected: {exc}")
        return 1
    if as_json:
        emit_json({"accepted": True, "device": quote.device, "measurement": quote.measurement})
    else:
        click.echo(f"accepted: device {quote.device}, measurement {quote.measurement[:16]}…")
    return 0
