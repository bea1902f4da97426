"""The ``vtrust`` command group and its commands."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust import __version__, progress
from vtrust.catalog import SECTIONS, listing
from vtrust.cli.attack_cmd import attack
from vtrust.cli.audit_cmd import audit
from vtrust.cli.common import OUTPUT_FILE, Group, echo_listing, emit_json, model_options
from vtrust.cli.defense_cmd import defense
from vtrust.cli.enclave_cmd import enclave
from vtrust.cli.evaluate_cmd import evaluate
from vtrust.cli.int8_cmd import int8
from vtrust.cli.ownership_cmd import ownership
from vtrust.cli.proof_cmd import prove, quantize, verify
from vtrust.cli.protect_cmd import keygen, scramble, seal, unscramble, unseal
from vtrust.cli.watermark_cmd import gate, watermark

# The zoo's names, without importing torch for `--help` (a test checks they equal
# sorted(vtrust.models.ARCHITECTURES)).
ARCH_NAMES = ("cnn", "mlp", "quad", "softmax")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vtrust")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or stage lines.")
@click.option("--threads", default=None, metavar="N",
              help="Compute threads for torch and BLAS, everywhere (default: VTRUST_THREADS, "
              "else one for query-side defenses, the libraries' own elsewhere).")  # fmt: skip
def cli(quiet: bool, threads: str | None) -> None:
    """vtrust: protect ML models on untrusted devices and verify what they compute."""
    from vtrust.threads import requested, set_threads

    if quiet:
        progress.set_enabled(False)
    count = requested(threads)
    if count is not None:
        set_threads(count)


@cli.command()
@click.option(
    "--dataset",
    default="digits",
    show_default=True,
    help="digits, synthetic[:SEED] or idx:DIR (MNIST-format IDX files).",
)
@click.option("--arch", type=click.Choice(ARCH_NAMES), default="mlp", show_default=True,
              help="Zoo architecture (quad: x² activations, for proofs).")  # fmt: skip
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Initialisation and batch order."
)
@click.option(
    "--split-seed", type=int, default=0, show_default=True, help="Seed of the data splits."
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Override the tuned epochs (at least 1: an untrained model is not saved).",
)
@click.option("--out", type=OUTPUT_FILE, required=True, help="The model file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train(dataset, arch, seed, split_seed, epochs, out, as_json) -> None:
    """Train a model on a dataset's victim split and save it as a model file."""
    from vtrust.models.recipes import train_model

    trained = train_model(dataset, arch, seed=seed, split_seed=split_seed, epochs=epochs)
    from vtrust.models import save_model

    sha = save_model(out, trained.model, trained.metadata)
    result = {
        "arch": arch,
        "dataset": dataset,
        "seed": seed,
        "split_seed": split_seed,
        "epochs": trained.metadata["training"]["epochs"],
        "test_accuracy": trained.test_accuracy,
        "model_sha256": sha,
        "out": str(out),
    }
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"trained {arch} on {dataset}: test accuracy {trained.test_accuracy:.4f}, "
            f"sha256 {sha[:16]}…, saved to {out}"
        )


@cli.command()
@click.argument("model_file", type=click.Path(dir_okay=False, path_type=Path))
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model_file: Path, options, as_json: bool) -> None:
    """Validate a model file of any format and show what vtrust reads off it: format,
    SHA-256, input, classes, white or black box (and a vtrust file's metadata). A vtrust
    file is checked in full (both checksums, the architecture's shapes) without torch."""
    from vtrust.targets.options import read_model_bytes
    from vtrust.targets.sniff import sniff

    raw = read_model_bytes(model_file)
    if sniff(raw) in ("vtrust", "damaged-safetensors"):
        from vtrust.models.header import read_model_header

        header = read_model_header(raw, str(model_file))
        meta = {**header.metadata, "parameters": header.n_parameters}
        if as_json:
            emit_json(meta)
        else:
            _describe_vtrust(model_file, meta)
        return
    from vtrust.targets.loading import load_target_bytes

    target = load_target_bytes(raw, options, source=str(model_file))
    meta = target.describe()
    if target.module is not None:
        meta["parameters"] = sum(p.numel() for p in target.module.parameters())
    if as_json:
        emit_json(meta)
    else:
        _describe_foreign(model_file, target, meta)


def _describe_foreign(model_file: Path, target, meta: dict) -> None:
    spec = meta["input"]
    click.echo(f"{model_file}: {meta['format']} model ({meta.get('runtime', 'torch')})")
    click.echo(
        f"  input         {spec['shape']} (C, H, W) as {spec['layout']}, pixels "
        f"0..1 → {spec['value_range']}"
    )
    click.echo(f"  outputs       {meta['n_classes']} classes ({meta['outputs']})")
    reason = "" if target.white_box else f" — {target.white_box_reason}"
    click.echo(f"  access        {'white box' if target.white_box else 'black box'}{reason}")
    click.echo(f"  sha256        {meta['sha256']}")


def _describe_vtrust(model_file: Path, meta: dict) -> None:
    arch = meta["arch"]
    click.echo(f"{model_file}: vtrust model (format version {meta['format_version']})")
    click.echo(
        f"  architecture  {arch['name']} {arch['params']}, input {arch['input_shape']}, "
        f"{arch['n_classes']} classes, {meta['parameters']} parameters"
    )
    if "dataset" in meta:
        dataset = meta["dataset"]
        click.echo(f"  dataset       {dataset['spec']} (split seed {dataset['split_seed']})")
    if "test_accuracy" in meta:
        click.echo(f"  test accuracy {meta['test_accuracy']:.4f}")
    click.echo(f"  sha256        {meta['weights_sha256']}")


@cli.group()
def catalog() -> None:
    """Named configurations of attacks, defenses and circuits."""


@catalog.command("list")
@click.option("--section", type=click.Choice(SECTIONS), default=None, help="Only this section.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def catalog_list(section: str | None, as_json: bool) -> None:
    """List every catalog entry: name, kind, description (``--json``: with the settings
    each file makes; the parameters are checked in full when an entry is used)."""
    sections = [section] if section else list(SECTIONS)
    entries = {s: listing(s) for s in sections}
    if as_json:
        emit_json({s: [e.to_json() for e in entries[s]] for s in sections})
        return
    for s in sections:
        click.echo(f"{s}:")
        if not entries[s]:
            click.echo("  (none)")
        echo_listing(entries[s], indent="  ")


@cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for models, report.md, report.json and plots.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def demo(out: Path, as_json: bool) -> None:
    """Run the main job on the embedded digits data and write a report."""
    from vtrust.demo import run_demo

    data = run_demo(out)
    if as_json:
        emit_json(data)
        return
    for arch, m in data["models"].items():
        click.echo(f"{arch:<8} test accuracy {m['test_accuracy']:.4f}  ({m['file']})")
    click.echo(f"report: {out / 'report.md'}")


cli.add_command(attack)
cli.add_command(defense)
cli.add_command(quantize)
cli.add_command(prove)
cli.add_command(verify)
cli.add_command(watermark)
cli.add_command(gate)
cli.add_command(ownership)
for command in (keygen, scramble, unscramble, seal, unseal, enclave, evaluate, audit, int8):
    cli.add_command(command)
