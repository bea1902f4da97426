"""Helpers shared by CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


class Group(click.Group):
    """A command group whose command list shows each command's whole first sentence
    (wrapped), not a summary cut at the terminal's width; its subgroups are the same."""

    group_class = type

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class OutputFile(click.Path):
    """A file a command will write: its folder must exist (a typo in ``--out`` must not
    create folders, or put a secret somewhere unexpected), checked before any work."""

    name = "output file"

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        path = Path(super().convert(value, param, ctx))
        if not path.parent.is_dir():
            self.fail(f"the folder {path.parent} does not exist (create it first)", param, ctx)
        return path


JSON_HELP = 'Print one JSON object on stdout (a failure too: {"error", "exit_code"}).'
KEY_HELP = "The watermark key file (JSON, from `watermark embed`; keep it secret)."
FPR_HELP = "False-positive rate the ownership decision allows."
SPLIT_HELP = "What runs inside: none, all (MLCapsule), first:K, last:K or slalom."
DEFENSE_HELP = "Defense, by name (`vtrust defense list`) or TOML file (repeatable)."
ATTACK_HELP = "Extraction attack, by name (`vtrust attack list`) or TOML file (repeatable)."
CIRCUIT_NAME_HELP = "Circuit, by name (`vtrust catalog list --section circuits`) or TOML file."
CIRCUIT_HELP = ("Circuit, by name (`vtrust catalog list --section circuits`) or TOML file; "
                "default: the one the model file was quantised for.")  # fmt: skip

#: Every file option a command writes to.
OUTPUT_FILE = OutputFile()
#: Every file option a command reads (or a state file it updates in place).
INPUT_FILE = click.Path(dir_okay=False, path_type=Path)


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, sort_keys=True, allow_nan=False))


def echo_listing(entries, indent: str = "") -> None:
    """Print catalog listings as aligned columns: name, kind, description."""
    name_width = max((len(e.name) for e in entries), default=0) + 2
    kind_width = max((len(e.kind) for e in entries), default=0) + 2
    for e in entries:
        click.echo(f"{indent}{e.name:<{name_width}}{e.kind:<{kind_width}}{e.description}")


def target_splits(model_file: Path, data: str | None = None, options=None):
    """The target in a model file of any format and its dataset splits (``data``
    overrides a vtrust file's recorded spec; other formats need it); see
    :func:`vtrust.targets.load_target_and_splits`."""
    from vtrust.targets import LoadOptions, load_target_and_splits

    return load_target_and_splits(model_file, data, options or LoadOptions())


def load_npy(path: Path):
    """A plain ``.npy`` array (never unpickled); InputError naming a missing file or a
    file that is not one."""
    import numpy as np

    from vtrust.errors import InputError

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a .npy file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a .npy array ({exc})") from None


def zoo_model(target, operation: str):
    """The zoo model of a vtrust-file target, for operations that rebuild or save its
    architecture; BlackBoxOnly for a black box, InputError for another white-box format."""
    from vtrust.errors import InputError
    from vtrust.models import ZooModel

    module = target.require_module(operation)
    if not isinstance(module, ZooModel):
        raise InputError(
            f"{operation} works on vtrust model files (zoo architectures); "
            f"this is a {target.format} model"
        )
    return module


def _floats(text: str | None, name: str, count: int | None = None):
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers, got {text!r}", param_hint=name
        ) from None
    if count is not None and len(values) != count:
        raise click.BadParameter(f"expected {count} numbers, got {text!r}", param_hint=name)
    return values


def model_options(command):
    """Options describing a model file that does not describe itself (TorchScript, state
    dicts, ONNX/TFLite inputs that need scaling); they add ``options`` (LoadOptions)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, arch_module, input_shape, layout, value_range, mean, std, outputs, **kw):
        from vtrust.targets import LoadOptions

        shape = _floats(input_shape, "--input-shape", 3)
        kw["options"] = LoadOptions(
            input_shape=None if shape is None else tuple(int(v) for v in shape),
            layout=layout,
            value_range=_floats(value_range, "--value-range", 2),
            mean=_floats(mean, "--mean"),
            std=_floats(std, "--std"),
            outputs=outputs,
            arch_module=arch_module,
        )
        return command(*args, **kw)

    decorators = [
        click.option(
            "--arch-module",
            default=None,
            metavar="PKG.MOD:CLASS",
            help="Your module class, for a state-dict file (torch.save or "
            "safetensors); imported and built with no arguments.",
        ),
        click.option(
            "--input-shape",
            default=None,
            metavar="C,H,W",
            help="Input shape, when the file does not record it (TorchScript, "
            "state dicts); default: the data's.",
        ),
        click.option(
            "--layout",
            type=click.Choice(["NCHW", "NHWC"]),
            default=None,
            help="The model's input layout (default: read off the file, else NCHW).",
        ),
        click.option(
            "--value-range",
            default=None,
            metavar="LO,HI",
            help="What pixel values 0..1 become for the model, e.g. 0,255.",
        ),
        click.option(
            "--mean",
            default=None,
            metavar="M[,M,M]",
            help="Per-channel mean subtracted after scaling.",
        ),
        click.option(
            "--std",
            default=None,
            metavar="S[,S,S]",
            help="Per-channel std divided by after the mean.",
        ),
        click.option(
            "--outputs",
            type=click.Choice(["auto", "logits", "probabilities"]),
            default="auto",
            show_default=True,
            help="What the model returns (auto: probabilities if every row is one).",
        ),
    ]
    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper


def data_option(command):
    """``--data SPEC``: the dataset to use instead of the one the model file records."""
    return click.option(
        "--data",
        "data",
        default=None,
        metavar="SPEC",
        help="Dataset (needed for models other than vtrust files, else overrides the "
        "recorded one): digits, synthetic[:SEED], idx:DIR, npz:FILE, folder:DIR.",
    )(command)


def simulation_seed_option(command):
    """``--seed``: seeds a simulated attack and the deployed defenses' secret randomness
    (reproducible, and then predictable); by default the defenses draw from a CSPRNG."""
    return click.option(
        "--seed",
        type=int,
        default=None,
        help="Seed the attacker and the defenses' secret randomness (INSECURE: reproducible "
        "runs); default: attacker seed 0, defenses' secrets from a CSPRNG.",
    )(command)


def dating_options(what: str):
    """``--notary-pub`` and ``--suspect-seen``: the verifier's dating policy; ``what`` is
    the material they date (for the help text)."""

    def decorate(command):
        command = click.option(
            "--suspect-seen", default=None,
            help="When you first saw the suspect (ISO time, UTC if no zone); with --notary-pub.",
        )(command)  # fmt: skip
        return click.option(
            "--notary-pub", type=INPUT_FILE, default=None,
            help=f"The notary you trust: require its receipt dating {what} before --suspect-seen.",
        )(command)  # fmt: skip

    return decorate


def dating_policy(notary_pub, suspect_seen):
    """The verifier's dating policy from the CLI options (both or neither): a
    :class:`~vtrust.watermark.ownership.Dating`, or None."""
    from vtrust.watermark.notary import load_public, parse_time
    from vtrust.watermark.ownership import Dating

    if (notary_pub is None) != (suspect_seen is None):
        raise click.UsageError("--notary-pub and --suspect-seen go together")
    if notary_pub is None:
        return None
    try:
        seen = parse_time(suspect_seen)
    except ValueError:
        raise click.BadParameter(
            f"not an ISO time: {suspect_seen!r}", param_hint="--suspect-seen"
        ) from None
    return Dating(load_public(notary_pub), seen)


def report_rejection(exc, as_json: bool) -> int:
    """A rejected proof, as one JSON object or one line; the exit code (1)."""
    if as_json:
        emit_json({"accepted": False, "reason": exc.reason})
    else:
        click.echo(f"rejected: {exc.reason}")
    return 1
