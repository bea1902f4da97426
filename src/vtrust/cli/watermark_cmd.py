"""``vtrust watermark …`` and ``vtrust gate watermark``."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import (
    FPR_HELP,
    JSON_HELP,
    KEY_HELP,
    OUTPUT_FILE,
    Group,
    data_option,
    dating_options,
    dating_policy,
    emit_json,
    model_options,
    target_splits,
    zoo_model,
)
from vtrust.cli.common import INPUT_FILE as MODEL


@click.group(cls=Group)
def watermark() -> None:
    """Embed, verify, calibrate, fingerprint, trace and stress-test watermarks."""


@watermark.command("embed")
@click.option("--kind", type=click.Choice(["static", "dynamic"]), required=True,
              help="static: bits in one layer's weights (Uchida); dynamic: a trigger set read "
              "through queries (Adi / Zhang).")  # fmt: skip
@click.option("--model", "model_file", type=MODEL, required=True, help="Model to watermark.")
@click.option("--out", type=OUTPUT_FILE, required=True, help="Watermarked model file.")
@click.option("--key-out", type=OUTPUT_FILE, required=True, help="Key file (JSON; keep it secret).")
@click.option("--bits", type=click.IntRange(min=1), default=256, show_default=True,
              help="Bits of a static mark.")  # fmt: skip
@click.option("--layer", default=None, help="Layer for a static mark (default: the largest).")
@click.option(
    "--strength",
    type=click.FloatRange(min=0, min_open=True),
    default=0.05,
    show_default=True,
    help="Regularizer weight λ (static).",
)
@click.option(
    "--style",
    type=click.Choice(["noise", "content", "unrelated", "entangled"]),  # keys.STYLES
    default="noise",
    show_default=True,
    help="Trigger style (dynamic; entangled: EWE, survives more extraction).",
)
@click.option("--triggers", type=click.IntRange(min=1), default=100, show_default=True,
              help="Trigger images of a dynamic mark.")  # fmt: skip
@click.option(
    "--retrain", is_flag=True, help="Train from scratch with the mark instead of fine-tuning."
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs.")
@click.option("--owner", default="", help="Owner name recorded in the key.")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Derive the key from this seed (INSECURE: reproducible experiments only).",
)
@click.option(
    "--notary", "notary_file", type=MODEL, default=None,
    help="Notary file: date the key's commitment now (evidence for a dispute).",
)  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def embed(
    model_file,
    out,
    key_out,
    kind,
    bits,
    layer,
    strength,
    style,
    triggers,
    retrain,
    epochs,
    owner,
    seed,
    notary_file,
    data,
    as_json,
):
    """Embed a new watermark and write the marked model and its key."""
    from vtrust.watermark.embedding import embed_watermark
    from vtrust.watermark.notary import Notary

    notary = Notary.load(notary_file) if notary_file is not None else None

    result = embed_watermark(
        model_file,
        out,
        key_out,
        kind=kind,
        bits=bits,
        layer=layer,
        strength=strength,
        style=style,
        triggers=triggers,
        retrain=retrain,
        epochs=epochs,
        owner=owner,
        seed=seed,
        notary=notary,
        data=data,
    )
    if as_json:
        emit_json(result)
    else:
        if seed is not None:
            click.echo(f"warning: INSECURE key: derived from seed {seed}; anyone can remake it")
        click.echo(
            f"embedded a {kind} watermark: accuracy {result['accuracy_before']:.4f} -> "
            f"{result['accuracy_after']:.4f}, p = {result['verification']['p_value']:.3g}; "
            f"commitment {result['commitment']}"
        )


@watermark.command("verify")
@click.option("--model", "model_file", type=MODEL, required=True,
              help="The suspect model file (any format vtrust reads).")  # fmt: skip
@click.option("--key", "key_file", type=MODEL, required=True, help=KEY_HELP)
@click.option(
    "--fpr", type=click.FloatRange(min=0, max=1, min_open=True), default=1e-6,
    show_default=True, help=FPR_HELP,
)  # fmt: skip
@dating_options("the key")
@data_option
@model_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def verify_cmd(model_file, key_file, fpr, notary_pub, suspect_seen, data, options, as_json):
    """Decide ownership of a model with a p-value (exit 0 owned, 1 not owned).

    Everything compared is derived from the key's secret; the decision needs
    p · 2^64 ≤ fpr (a claimant may have tried 2^64 secrets). With --notary-pub it also
    needs a notary receipt older than --suspect-seen. A dynamic key verifies any model
    format through its black box (pass --data for non-vtrust files); a static key needs
    the weights."""
    from vtrust.watermark.keys import load_key
    from vtrust.watermark.ownership import verify

    dating = dating_policy(notary_pub, suspect_seen)
    key = load_key(key_file)
    model, splits = target_splits(model_file, data, options)
    result = verify(model, key, splits, fpr=fpr, dating=dating).to_json()
    if as_json:
        emit_json(result)
    else:
        metric = (
            f"BER {result['ber']:.4f}"
            if "ber" in result
            else f"trigger accuracy {result['trigger_accuracy']:.4f}"
        )
        verdict = "OWNED" if result["owned"] else "not owned"
        dated = {
            True: "dated before the suspect",
            False: "NOT dated",
            None: "no dating check (--notary-pub)",
        }
        click.echo(
            f"{verdict}: {metric}, p = {result['p_value']:.3g}, × 2^{result['grinding_bits']}"
            f" tries = {result['adjusted_p_value']:.3g} (fpr {fpr:g}); "
            f"{dated[result['dated']]}"
            + ("; INSECURE key (made from a seed)" if result["insecure_key"] else "")
            + (
                f", calibrated threshold {result['calibrated_threshold']:.4f} from "
                f"{result['null_models']} null models"
                if result["null_models"]
                else ""
            )
            + (f" [{result['reason']}]" if result["reason"] else "")
        )
    return 0 if result["owned"] else 1


@watermark.command("notary")
@click.option(
    "--out", type=OUTPUT_FILE, required=True, help="Private notary file (public: OUT.pub.json)."
)
def notary_cmd(out):
    """Create a notary (timestamp authority) key pair for dating key commitments."""
    from vtrust.watermark.notary import Notary, public_path

    Notary.generate().save(out)
    click.echo(f"notary: private {out}, public {public_path(out)}")


@watermark.command("notarize")
@click.option("--key", "key_file", type=MODEL, required=True, help=KEY_HELP)
@click.option("--notary", "notary_file", type=MODEL, required=True, help="Private notary file.")
def notarize_cmd(key_file, notary_file):
    """Date a key's commitment now: the notary signs it and the receipt joins the key."""
    from vtrust.watermark.keys import load_key, save_key
    from vtrust.watermark.notary import Notary

    notary = Notary.load(notary_file)
    key = load_key(key_file)
    receipt = notary.notarize(key.commitment, key.owner)
    save_key(key_file, key.with_receipt(receipt))
    click.echo(f"commitment {key.commitment[:16]}… dated {receipt['time']}")


@watermark.command("calibrate")
@click.option(
    "--model",
    "model_file",
    type=MODEL,
    required=True,
    help="The marked model (its architecture and data define the null).",
)
@click.option("--key", "key_file", type=MODEL, required=True,
              help="The key to calibrate (its file is updated with the null).")  # fmt: skip
@click.option("--null-models", type=click.IntRange(min=2), default=20, show_default=True,
              help="Independently trained models forming the empirical null.")  # fmt: skip
@data_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def calibrate_cmd(model_file, key_file, null_models, data, as_json):
    """Train independent null models and store the empirical null in the key file."""
    from vtrust.watermark.calibration import calibrate
    from vtrust.watermark.keys import load_key, save_key

    key = load_key(key_file)
    target, splits = target_splits(model_file, data)
    model = zoo_model(target, "calibration (it trains null models of the same architecture)")
    calibration = calibrate(
        key, splits, model.spec.name, models=null_models, params=model.spec.params
    )
    save_key(key_file, key.with_calibration(calibration))
    result = calibration.to_json()
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"null scores over {null_models} models: mean {result['mean']:.4f}, "
            f"std {result['std']:.4f}, max {max(result['scores']):.4f}"
        )


@watermark.command("fingerprint")
@click.option("--model", "model_file", type=MODEL, required=True,
              help="The model to mark once per user.")  # fmt: skip
@click.option("--users", required=True, help="Comma-separated user or device names.")
@click.option(
    "--registry",
    type=OUTPUT_FILE,
    required=True,
    help="SQLite registry of keys (created if missing; private).",
)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the marked copies (created).")  # fmt: skip
@click.option("--model-version", default="1", show_default=True,
              help="Version label recorded with each user's key.")  # fmt: skip
@click.option("--bits", type=click.IntRange(min=1), default=128, show_default=True,
              help="Bits of each user's static mark.")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Reproducible keys (experiments only).")
@data_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def fingerprint_cmd(model_file, users, registry, out_dir, model_version, bits, seed, data, as_json):
    """Write one individually watermarked copy per user and register their keys."""
    from vtrust.watermark.embedding import fingerprint_model

    result = fingerprint_model(
        model_file,
        [u.strip() for u in users.split(",") if u.strip()],
        registry,
        out_dir,
        model_version=model_version,
        bits=bits,
        seed=seed,
        data=data,
    )
    if as_json:
        emit_json(result)
    else:
        for user, info in result["copies"].items():
            click.echo(f"{user:<16} accuracy {info['accuracy']:.4f}  {info['file']}")


@watermark.command("trace")
@click.argument("suspect", type=MODEL)
@click.option("--registry", type=MODEL, required=True,
              help="The registry `watermark fingerprint` wrote.")  # fmt: skip
@click.option(
    "--fpr", type=click.FloatRange(min=0, max=1, min_open=True), default=1e-6,
    show_default=True, help=FPR_HELP,
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def trace_cmd(suspect, registry, fpr, as_json):
    """Rank the registered users by the p-value of their fingerprint in SUSPECT."""
    from vtrust.models import load_model
    from vtrust.watermark.registry import FingerprintRegistry

    if not registry.is_file():
        raise click.BadParameter(f"{registry} does not exist", param_hint="--registry")
    model = load_model(suspect).model
    rows = [r.to_json() for r in FingerprintRegistry(registry).trace(model, fpr=fpr)]
    if as_json:
        emit_json({"suspect": str(suspect), "ranking": rows})
        return
    for r in rows:
        click.echo(
            f"{r['user']:<16} p = {r['p_value']:.3g}  BER {r['ber']:.3f}"
            + ("  <- match" if r["owned"] else "")
        )


def robustness_options(command):
    """The options shared by ``watermark robustness`` and ``gate watermark``."""
    decorators = [
        click.option(
            "--model", "model_file", type=MODEL, required=True, help="The watermarked model file."
        ),
        click.option("--key", "key_file", type=MODEL, required=True, help=KEY_HELP),
        click.option(
            "--attack",
            "attacks",
            multiple=True,
            help="Removal, extraction or ambiguity attack, by name (`vtrust attack list`) "
            "or TOML file (repeatable; default: ftal, rtal, prune-global, fine-prune, "
            "quantize, weight-noise, overwrite, ambiguity).",
        ),
        click.option(
            "--fpr",
            type=click.FloatRange(min=0, max=1, min_open=True),
            default=1e-6,
            show_default=True,
            help=FPR_HELP,
        ),
        click.option(
            "--max-accuracy-drop",
            type=click.FloatRange(0, 1),
            default=0.05,
            show_default=True,
            help="An attack counts as a removal only if the "
            "model's accuracy stays within this of the original's.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seeds the simulated attacker only (removal, thieves, forged "
            "secrets it grinds); no owner secret depends on it.",
        ),  # fmt: skip
        click.option(
            "--answer-watermark",
            type=click.FloatRange(min=0, max=0.5, min_open=True),
            default=None,
            metavar="RATE",
            help="Deploy the model behind an answer watermark at this rate for extraction "
            "attacks: a thief still traced to its client counts as caught.",
        ),
        data_option,
        model_options,
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def _run_robustness(model_file, key_file, attacks, fpr, max_accuracy_drop, seed, answer_watermark,
                    data, options):  # fmt: skip
    from vtrust.catalog import load_entry
    from vtrust.evaluation.watermark import DEFAULT_ATTACKS, evaluate_robustness
    from vtrust.watermark.keys import load_key

    key = load_key(key_file)
    entries = [load_entry("attacks", a) for a in attacks or DEFAULT_ATTACKS]
    model, splits = target_splits(model_file, data, options)
    return evaluate_robustness(model, key, splits, entries, fpr=fpr,
                               max_accuracy_drop=max_accuracy_drop, seed=seed,
                               answer_watermark=answer_watermark)  # fmt: skip


@watermark.command("robustness")
@robustness_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (created): report.md, report.json, plots.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def robustness_cmd(model_file, key_file, attacks, fpr, max_accuracy_drop, seed, answer_watermark,
                   data, options, out, as_json):  # fmt: skip
    """Watermark and accuracy after each attack over its strengths (table, JSON, plots)."""
    from vtrust.watermark.report import robustness_report

    report = _run_robustness(model_file, key_file, attacks, fpr, max_accuracy_drop, seed,
                             answer_watermark, data, options)  # fmt: skip
    if out is not None:
        robustness_report(report).write(out, report)
    if as_json:
        emit_json(report)
    else:
        _print_table(report)


def _print_table(report: dict) -> None:
    from vtrust.watermark.report import verdict as outcome_verdict

    base = report["baseline"]
    click.echo(
        f"baseline: owned={base['owned']} p={base['p_value']:.3g} "
        f"accuracy={report['original_accuracy']:.4f}"
    )
    for outcome in report["attacks"]:
        verdict = outcome_verdict(outcome)
        worst = min((r["score"] for r in outcome["rows"]), default=float("nan"))
        traced = [r for r in outcome["rows"] if "traced" in r]
        answer = "".join(f", answer watermark p {r['answer_p_value']:.3g} ("
                         + ("thief traced" if r["traced"] else "not traced") + ")"
                         for r in traced)  # fmt: skip
        click.echo(f"  {outcome['attack']:<24} {verdict:<8} lowest score {worst:.4f}{answer}")


@click.group(cls=Group)
def gate() -> None:
    """CI gates: exit 0 pass, 1 fail, 2 bad input."""


@gate.command("watermark")
@robustness_options
@click.option("--junit", type=OUTPUT_FILE, default=None, help="Write JUnit XML here.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def gate_watermark(model_file, key_file, attacks, fpr, max_accuracy_drop, seed, answer_watermark,
                   data, options, junit, as_json):  # fmt: skip
    """Fail (exit 1) unless the watermark verifies and survives every listed attack."""
    from vtrust._io import atomic_write_bytes
    from vtrust.evaluation.watermark import junit_xml

    report = _run_robustness(model_file, key_file, attacks, fpr, max_accuracy_drop, seed,
                             answer_watermark, data, options)  # fmt: skip
    if junit is not None:
        atomic_write_bytes(junit, junit_xml(report))
    if as_json:
        emit_json(report)
    else:
        _print_table(report)
        smoke = " (smoke test under VTRUST_QUICK: not a verdict)" if report.get("quick") else ""
        click.echo(("PASS" if report["survives_all"] else "FAIL") + smoke)
    return 0 if report["survives_all"] else 1
