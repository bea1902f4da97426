"""Run every study in turn (``make reproduce``), record how long each took, regenerate
the README's results section from their outputs, and with ``--check`` fail when a
figure left the spread of the committed results.

    python experiments/reproduce.py [--only study,study] [--check] [--results DIR]
                                    [--readme README.md]

Each study runs with its defaults (three seeds; a ``<script>-mnist`` study is
``<script>.py`` on the MNIST IDX files of ``--mnist`` with the arguments
``mnist_runs.MNIST_RUNS`` gives it) and writes ``results/<study>/``; the
committed ``results/<study>/results.json`` files are the reference. ``--check`` (``make
reproduce-check``) compares every rerun with the committed version of its file (``git
show HEAD:…``, or the file as it was before the rerun outside a git checkout) by
:func:`vtrust.evaluation.spread.deviations` — a figure that varies between seeds must
come back within the committed min–max, a figure the same in every seed must come back
equal; timings are not compared — prints every figure that left, by study and path, and
exits 1 if any did. Fingerprints (a victim's weight hash, a matrix cell's key) are not
figures: when they differ, one line per study says the rerun is not bit-exact with the
committed one and on which CPUs and code paths each was made (its ``numerics``), and the
figures are still held to the spread.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mnist_runs import MNIST_RUNS, study_command

from vtrust.evaluation.spread import deviations
from vtrust.report import without_timings

HERE = Path(__file__).resolve().parent
STUDIES = ["attacks", "watermark", "defenses", "matrix", "proofs", "scrambling", "enclave", "byom",
           "ownership", "entangled", "metering", "adaptive",
           "stealing", "stealers", "int8", *MNIST_RUNS]  # fmt: skip


def committed(path: Path) -> dict[str, Any] | None:
    """The committed version of a results file: ``git show HEAD:path`` in a checkout,
    else the file itself; ``None`` when there is neither."""
    if not path.parent.is_dir():
        return None
    shown = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                           capture_output=True, text=True)  # fmt: skip
    if shown.returncode == 0:
        return json.loads(shown.stdout)
    return json.loads(path.read_text()) if path.exists() else None


_FINGERPRINT = re.compile(r"is none of the committed \[?'[0-9a-f]{16}")


def check_study(study: str, reference: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    """Every figure of a rerun outside the reference, as ``study: path: reason``."""
    ref, new = reference.get("across_seeds", reference), rerun.get("across_seeds", rerun)
    problems = (
        []
        if reference.get("seeds") == rerun.get("seeds")
        else [f"seeds {rerun.get('seeds')} differ from the committed {reference.get('seeds')}"]
    )
    found = deviations(ref, new)
    fingerprints = [line.split(":", 1)[0] for line in found if _FINGERPRINT.search(line)]
    if fingerprints:
        print(f"[reproduce] {study}: not bit-exact with the committed run — {len(fingerprints)} "
              f"fingerprints differ (e.g. {fingerprints[0]}); committed on "
              f"{_platform(reference)}, rerun on {_platform(rerun)}", file=sys.stderr)  # fmt: skip
    figures = [line for line in found if not _FINGERPRINT.search(line)]
    return [f"{study}: {line}" for line in problems + figures]


def identical(reference: dict[str, Any], rerun: dict[str, Any]) -> bool:
    """Whether two results agree in every figure but the timings (bit for bit)."""

    def figures(results: dict[str, Any]) -> Any:
        return without_timings(results.get("across_seeds", results))

    return figures(reference) == figures(rerun)


def _platform(results: dict[str, Any]) -> str:
    numerics = results.get("numerics") or {}
    paths = "portable" if numerics.get("portable") else "CPU-specific"
    return f"{numerics.get('cpu', '?')} ({paths} code paths)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STUDIES),
                        help="Comma-separated studies (default: all).")  # fmt: skip
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--mnist", type=Path, default=HERE.parent.parent / "shared/data/mnist",
                        help="MNIST IDX files for the *-mnist studies (default: "
                        "../shared/data/mnist beside the checkout).")  # fmt: skip
    parser.add_argument("--readme", type=Path, default=Path("README.md"),
                        help="The README whose results section is regenerated.")  # fmt: skip
    parser.add_argument("--study-args", default="",
                        help="Extra arguments for every study (a reduced run, e.g. in "
                        "tests; the committed results use none).")  # fmt: skip
    parser.add_argument("--check", action="store_true",
                        help="Fail, naming the figures, when a rerun leaves the committed "
                        "results' spread.")  # fmt: skip
    args = parser.parse_args()
    studies = args.only.split(",")
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        parser.error(f"--only: unknown studies {unknown} (known: {', '.join(STUDIES)})")
    references = {}
    if args.check:
        for study in studies:
            references[study] = committed(args.results / study / "results.json")
            if references[study] is None:
                parser.error(f"--check: no committed results for {study} "
                             f"({args.results / study / 'results.json'})")  # fmt: skip
    record_path = args.results / "reproduce" / "results.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"seconds": {}}
    problems: list[str] = []
    for study in studies:
        if study in MNIST_RUNS and not any(args.mnist.glob("t10k-images*")):
            print(f"[reproduce] {study}: skipped (no MNIST IDX files in {args.mnist})",
                  file=sys.stderr)  # fmt: skip
            continue
        script, *study_args = study_command(study, args.mnist)
        print(f"[reproduce] {study} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        out = args.results / study
        subprocess.run([sys.executable, str(HERE / script), *study_args,
                        *shlex.split(args.study_args), "--out", str(out)], check=True)  # fmt: skip
        record["seconds"][study] = time.perf_counter() - started
        print(f"[reproduce] {study}: {record['seconds'][study] / 60:.1f} min", file=sys.stderr)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if args.check:
            rerun = json.loads((out / "results.json").read_text())
            found = check_study(study, references[study], rerun)
            verdict = (f"{len(found)} figures left the committed spread" if found
                       else "checked: identical to the committed results, timings aside"
                       if identical(references[study], rerun)
                       else "checked: within the committed spread")  # fmt: skip
            print(f"[reproduce] {study}: {verdict}", file=sys.stderr)
            problems += found
    subprocess.run([sys.executable, str(HERE / "readme_results.py"), "--results",
                    str(args.results), "--readme", str(args.readme)], check=True)  # fmt: skip
    total = sum(record["seconds"].get(s, 0) for s in studies)
    print(f"[reproduce] {len(studies)} studies in {total / 60:.1f} min", file=sys.stderr)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"[reproduce] check failed: {len(problems)} figures left the committed spread",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1)


if __name__ == "__main__":
    main()
