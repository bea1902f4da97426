"""``vtrust ownership``: calibrate the owner's evidence on a null population, then decide
ownership of a suspect with one verdict over every kind of evidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click

from vtrust.cli.common import (
    INPUT_FILE,
    JSON_HELP,
    OUTPUT_FILE,
    Group,
    data_option,
    dating_options,
    dating_policy,
    emit_json,
    model_options,
    target_splits,
)
from vtrust.errors import InputError

CALIBRATION_FORMAT = "vtrust-ownership-calibration"


@click.group(cls=Group)
def ownership() -> None:
    """Ownership evidence that survives extraction: answer watermarks, watermark keys,
    dataset inference — calibrated and combined."""


def material_options(command):
    decorators = [
        click.option("--key", "key_file", type=INPUT_FILE, default=None,
                     help="Watermark key (static or trigger set) of the owner's model."),
        click.option("--marks", "marks_file", type=INPUT_FILE, default=None,
                     help="The answer-watermark log of the owner's own oracle."),
        click.option("--owner-model", "owner_model", type=INPUT_FILE, default=None,
                     help="The owner's model, for dataset inference on its private split."),
        click.option("--samples", type=click.IntRange(min=2), default=100, show_default=True,
                     help="Points per side in the dataset-inference test."),
        data_option,
        model_options,
    ]  # fmt: skip
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def _sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def _owner_side(key_file, marks_file, owner_model, samples, data, options, splits=None,
                dated=None):  # fmt: skip
    """The owner's material from the command's options, its files' digests, and notes:
    with ``dated`` (``(Dating, dates file)``) only material dated before the suspect was
    seen is kept, one note per thing left out."""
    from vtrust.ownership.evidence import OwnerSide
    from vtrust.ownership.mark_store import read_records
    from vtrust.watermark.keys import load_key

    key = load_key(key_file) if key_file is not None else None
    records = read_records(marks_file)[0] if marks_file is not None else []
    notes: list[str] = []
    if dated is not None:
        key, records, owner_model, notes = _dated_material(key, records, marks_file,
                                                           owner_model, *dated)  # fmt: skip
    if owner_model is not None:
        model, splits = target_splits(owner_model, data, options)
        side = OwnerSide.with_dataset_inference(model, splits, samples=samples, key=key,
                                                records=records)  # fmt: skip
    else:
        if splits is None:
            if data is None:
                raise InputError("--data is needed without --owner-model (the owner's dataset)")
            from vtrust.data import load_dataset

            splits = load_dataset(data)
        side = OwnerSide(splits, key=key, records=records, samples=samples)
    if not side.available():
        if notes:
            raise InputError("no dated evidence material: " + "; ".join(notes))
        raise InputError("no evidence material: give --key, --marks and/or --owner-model")
    digests = {"key": _sha256(key_file), "marks": _sha256(marks_file),
               "owner_model": _sha256(owner_model), "samples": samples}  # fmt: skip
    return side, digests, notes


def _dated_material(key, records, marks_file, owner_model, dating, dates_file):
    """The key if a receipt dates it, the dated prefix of the mark log, and no
    dataset-inference material (nothing dates an owner's training split): what is left,
    and one note per thing left out."""
    from vtrust.ownership.log_dating import dated_prefix, dates_path, load_receipts
    from vtrust.watermark.notary import check_receipt

    notes = []
    if key is not None:
        why = check_receipt(key.receipt, key.commitment, dating.notary, dating.suspect_seen)
        if why:
            notes.append(f"key left out: {why}")
            key = None
    if marks_file is not None:
        dates = dates_file or dates_path(marks_file)
        if not Path(dates).exists():
            raise InputError(f"no dates for the mark log ({dates}): `ownership date-log` it")
        count, why = dated_prefix(records, load_receipts(dates), dating.notary,
                                  dating.suspect_seen)  # fmt: skip
        if count < len(records):
            notes.append(f"answer marks: {count} of {len(records)} records dated ({why})")
        records = records[:count]
    if owner_model is not None:
        notes.append("dataset inference left out: its material cannot be dated")
        owner_model = None
    return key, records, owner_model, notes


def _kinds(evidence: str | None, side) -> list[str] | None:
    if evidence is None:
        return None
    wanted = [k.strip() for k in evidence.split(",") if k.strip()]
    from vtrust.ownership.verdict import KINDS

    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise InputError(f"--evidence takes a comma-separated list of {', '.join(KINDS)}")
    return wanted


@ownership.command("calibrate")
@material_options
@click.option(
    "--null-models",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
    help="Independently trained models (mlp, cnn, softmax on the attacker split).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder caching the null models (created; reused by later runs).",
)
@click.option("--out", type=OUTPUT_FILE, required=True, help="Calibration file (JSON).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def calibrate_cmd(key_file, marks_file, owner_model, samples, data, options, null_models, cache,
                  out, as_json):  # fmt: skip
    """Measure every kind of the owner's evidence on a null population and write the
    calibration `ownership verify` uses."""
    from vtrust import progress
    from vtrust._io import atomic_write_bytes
    from vtrust.ownership.null_population import population
    from vtrust.ownership.verdict import calibrate_kinds

    side, digests, _ = _owner_side(key_file, marks_file, owner_model, samples, data, options)
    members = population(side.splits, null_models, cache=cache)
    per_model = []
    for i, (_, model) in enumerate(members):
        if i % 10 == 0:
            progress.stage(f"[ownership] evidence on null model {i + 1}/{len(members)}")
        per_model.append(side.evidence(model))
    calibration = calibrate_kinds(per_model)
    doc = {"format": CALIBRATION_FORMAT, "version": 1, "dataset": side.splits.spec,
           "material": digests, "members": [m.name for m, _ in members],
           "kinds": [c.to_json() for c in calibration.values()]}  # fmt: skip
    atomic_write_bytes(out, json.dumps(doc, indent=1).encode())
    summary = {k: {"null_models": len(c.null_scores), "mean_minus_log10_p": c.mean,
                   "std": c.std} for k, c in calibration.items()}  # fmt: skip
    if as_json:
        emit_json({"out": str(out), "kinds": summary})
    else:
        for kind, s in summary.items():
            click.echo(f"{kind}: {s['null_models']} null models, −log10 p mean "
                       f"{s['mean_minus_log10_p']:.2f} ± {s['std']:.2f}")  # fmt: skip
        click.echo(f"wrote {out}")


def _read_calibration(path: Path, digests: dict):
    from vtrust.ownership.verdict import KindCalibration

    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a calibration file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise InputError(f"{path}: not a vtrust ownership calibration")
    if doc.get("material") != digests:
        raise InputError(f"{path}: made for other evidence material (key, marks, owner model "
                         "or samples differ): recalibrate")  # fmt: skip
    entries = doc.get("kinds")
    if not isinstance(entries, list):
        raise InputError(f"{path}: malformed calibration (no kinds)")
    return {c.kind: c for c in map(KindCalibration.from_json, entries)}


@ownership.command("verify")
@click.argument("suspect", type=INPUT_FILE)
@material_options
@click.option(
    "--evidence",
    default=None,
    help="Comma-separated kinds: dawn, trigger, static, dataset-inference "
    "(default: every kind the material allows).",
)
@click.option(
    "--calibration",
    type=INPUT_FILE,
    default=None,
    help="From `ownership calibrate` with the same material (without it the "
    "p-values are used as the tests give them).",
)
@click.option(
    "--fpr",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=1e-6,
    show_default=True,
    help="False-positive rate of the verdict.",
)
@dating_options("the key and the mark log (only dated material counts)")
@click.option("--mark-dates", type=INPUT_FILE, default=None,
              help="The mark log's receipts (default: MARKS.dates.json).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def verify_cmd(suspect, key_file, marks_file, owner_model, samples, data, options, evidence,
               calibration, fpr, notary_pub, suspect_seen, mark_dates, as_json):  # fmt: skip
    """One verdict on SUSPECT (exit 0 owned, 1 not shown, 2 bad input): each kind's
    p-value, calibrated on the null population, combined by Bonferroni. With
    --notary-pub/--suspect-seen only material a receipt dates before the suspect was
    seen counts: the dated key, the dated prefix of the mark log (records written later
    could have been made to fit the suspect); dataset inference is left out."""
    from vtrust.ownership.verdict import combine

    dating = dating_policy(notary_pub, suspect_seen)
    if mark_dates is not None and dating is None:
        raise click.UsageError("--mark-dates needs --notary-pub and --suspect-seen")
    target, splits = target_splits(suspect, data, options)
    dated = None if dating is None else (dating, mark_dates)
    side, digests, notes = _owner_side(key_file, marks_file, owner_model, samples, data, options,
                                       splits, dated)  # fmt: skip
    kinds = _kinds(evidence, side)
    if kinds is not None and "static" in kinds and not target.white_box:
        raise InputError("static evidence needs the suspect's weights; it is a black box")
    if kinds is None and not target.white_box:
        kinds = [k for k in side.available() if k != "static"]
    cal = _read_calibration(calibration, digests) if calibration is not None else None
    if cal is not None and any(n.startswith("answer marks:") for n in notes):
        cal.pop("dawn", None)  # calibrated on the whole log, not on its dated prefix
    verdict = combine(side.evidence(target, kinds), fpr, cal).to_json()
    if dating is not None:
        verdict["dating"] = {"suspect_seen": dating.suspect_seen.isoformat(), "left_out": notes}
    if as_json:
        emit_json(verdict)
    else:
        for note in notes:
            click.echo(f"dating: {note}")
        for row in verdict["evidence"]:
            note = "" if row["calibrated"] else " (uncalibrated)"
            passes = "PASS" if row["passes"] else "no"
            click.echo(f"{row['kind']:<18} p {row['p_value']:.3g}, adjusted "
                       f"{row['adjusted_p_value']:.3g}, calibrated {row['calibrated_p_value']:.3g}"
                       f"{note}; threshold {row['threshold']:.3g}: {passes}")  # fmt: skip
        decision = "OWNED" if verdict["owned"] else "not shown"
        click.echo(f"{decision}: combined p {verdict['combined_p_value']:.3g} "
                   f"({verdict['rule']}) at fpr {fpr:g}")  # fmt: skip
    return 0 if verdict["owned"] else 1


@ownership.command("date-log")
@click.option("--marks", "marks_file", type=INPUT_FILE, required=True,
              help="The answer-watermark log to date (as it is now).")  # fmt: skip
@click.option("--notary", "notary_file", type=INPUT_FILE, required=True,
              help="The notary file (`watermark notary`).")  # fmt: skip
@click.option("--dates", "dates_file", type=OUTPUT_FILE, default=None,
              help="The receipts file to add to (default: MARKS.dates.json).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def date_log_cmd(marks_file, notary_file, dates_file, as_json):
    """Have the notary date the mark log as it is now: its receipt over the log's hash
    chain is added to the dates file. Run it on a schedule; `ownership verify
    --notary-pub` counts only records a receipt dates before the suspect was seen."""
    from vtrust.ownership.log_dating import add_receipt, date_log, dates_path
    from vtrust.ownership.mark_store import read_records
    from vtrust.watermark.notary import Notary

    records, _ = read_records(marks_file)
    receipt = date_log(records, Notary.load(notary_file))
    out = add_receipt(dates_file or dates_path(marks_file), receipt)
    result = {"dates": str(out), "records": len(records), "time": receipt["time"]}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"dated {len(records)} records at {receipt['time']} in {out}")
