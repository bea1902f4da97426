"""``vtrust keygen``, ``scramble`` / ``unscramble`` and ``seal`` / ``unseal``."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import INPUT_FILE as _FILE
from vtrust.cli.common import OUTPUT_FILE, emit_json

_KEPT = ("dataset", "training", "test_accuracy")


def _key(path: Path, device: str | None):
    from vtrust.keying import load_protection_key

    key = load_protection_key(path)
    return key.for_device(device) if device else key


@click.command()
@click.option("--out", type=OUTPUT_FILE, required=True, help="The new key file (keep it private).")
@click.option("--seed", type=int, default=None, help="Reproducible key (tests, experiments only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keygen(out: Path, seed: int | None, as_json: bool) -> None:
    """Create a 256-bit protection key for scrambling and sealing."""
    from vtrust.keying import ProtectionKey, save_protection_key

    key = ProtectionKey.generate(seed)
    save_protection_key(out, key)
    result = {"key": str(out), "fingerprint": key.fingerprint, "seeded": seed is not None}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"wrote key {key.fingerprint} to {out} (keep it private)")


def _keyed_model_command(model_help: str, device_help: str):
    """The options scramble and unscramble share."""

    def decorate(fn):
        for option in reversed([
            click.option("--model", "model_file", type=_FILE, required=True, help=model_help),
            click.option("--key", "key_file", type=_FILE, required=True,
                         help="The 256-bit key file from `vtrust keygen`."),
            click.option("--device", default=None, help=device_help),
            click.option("--out", type=OUTPUT_FILE, required=True, help="The file to write."),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
        ]):  # fmt: skip
            fn = option(fn)
        return click.command()(fn)

    return decorate


@_keyed_model_command("The model file.", "Scramble with this device's derived key.")
def scramble(model_file, key_file, device, out, as_json) -> None:
    """Permute every layer's weights under the key and a fresh per-file salt."""
    from vtrust.models import load_model, save_model
    from vtrust.protect.scramble import new_salt, scramble_metadata
    from vtrust.protect.scramble import scramble as scramble_model

    key = _key(key_file, device)
    loaded = load_model(model_file)
    salt = new_salt()
    record = scramble_metadata(loaded.model, key, salt)
    metadata = {k: v for k, v in loaded.metadata.items() if k in _KEPT}
    scrambled = scramble_model(loaded.model, key, salt)
    sha = save_model(out, scrambled, {**metadata, "scrambled": record})
    result = {"out": str(out), "scrambled_sha256": sha, "key_fingerprint": key.fingerprint,
              "device": key.device, "original_sha256": record["original_sha256"]}  # fmt: skip
    if as_json:
        emit_json(result)
    else:
        click.echo(f"scrambled {model_file} with key {key.fingerprint} → {out}")


@_keyed_model_command("A scrambled model.", "The device the model was scrambled for.")
def unscramble(model_file, key_file, device, out, as_json) -> None:
    """Restore a scrambled model bit for bit (refuses a wrong key)."""
    from vtrust.models import load_model, save_model
    from vtrust.protect.scramble import unscramble_checked

    key = _key(key_file, device)
    loaded = load_model(model_file)
    restored = unscramble_checked(loaded.model, loaded.metadata.get("scrambled"), key)
    metadata = {k: v for k, v in loaded.metadata.items() if k in _KEPT}
    sha = save_model(out, restored, metadata)
    if as_json:
        emit_json({"out": str(out), "sha256": sha})
    else:
        click.echo(f"unscrambled {model_file} → {out} (sha256 {sha[:16]}…, as recorded)")


@click.command()
@click.option("--in", "source", type=_FILE, required=True, help="Any file, e.g. a model.")
@click.option("--key", "key_file", type=_FILE, required=True,
              help="The 256-bit key file from `vtrust keygen`.")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def seal(source, key_file, out, as_json) -> None:
    """Encrypt a file with AES-256-GCM (its metadata authenticated)."""
    import hashlib

    from vtrust.protect.seal import seal_file

    key = _key(key_file, None)
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""
    seal_file(source, out, key, {"name": source.name, "plaintext_sha256": digest})
    if as_json:
        emit_json({"out": str(out), "key_fingerprint": key.fingerprint})
    else:
        click.echo(f"sealed {source} → {out} (key {key.fingerprint})")


@click.command()
@click.option("--in", "source", type=_FILE, required=True, help="A sealed file.")
@click.option("--key", "key_file", type=_FILE, required=True,
              help="The 256-bit key file from `vtrust keygen`.")  # fmt: skip
@click.option("--out", type=OUTPUT_FILE, required=True, help="The file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def unseal(source, key_file, out, as_json) -> None:
    """Decrypt a sealed file; nothing is written unless it authenticates."""
    from vtrust.protect.seal import unseal_file

    opened = unseal_file(source, out, _key(key_file, None))
    if as_json:
        emit_json({"out": str(out), "metadata": opened.metadata})
    else:
        click.echo(f"unsealed {source} → {out}")
