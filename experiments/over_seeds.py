"""Run a study once per seed, in parallel processes, and combine the runs.

Every study script adds :func:`add_seed_options` to its parser and, once it has parsed
its arguments, returns early when :func:`run_over_seeds` did the work::

    if run_over_seeds(__file__, args, study="attacks"):
        return

and runs ``main`` through :func:`run_study` (progress lines in a log).

With ``--seeds N`` (N > 1, the default 3) the script starts itself N times with
``--seeds 1 --seed S --out OUT/seed-S`` for S = seed … seed + N − 1, at most ``--jobs``
at once (each child computes on one thread — :func:`vtrust.reproducible.pin_numerics` —
so running children side by side changes no number, only the timings), prefixes each
child's progress lines with its seed, and writes ``OUT/results.json``: the seeds, the
numerics they were computed with, and ``across_seeds``, the runs summarised by
:func:`vtrust.evaluation.spread.summarise_runs` (mean, min, max and every seed's value
of each figure that differs between seeds). ``OUT/report.md`` shows the same tables as
the README's results section and links each seed's own report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vtrust import progress
from vtrust.evaluation.spread import summarise_runs
from vtrust.report import Report

# what differs between seeds by construction, or is the same by construction
_PER_RUN_FIELDS = ("seed", "numerics")


def run_study(main: Callable[[], None]) -> None:
    """A study's ``main`` as one command: in a log, a line at least every few seconds
    (:func:`vtrust.progress.running` — the heartbeat speaks only inside a command)."""
    with progress.running():
        main()


def add_seed_options(parser: argparse.ArgumentParser, *, jobs: int) -> None:
    """``--seeds`` (default 3) and ``--jobs`` (default ``jobs``: 1 for studies whose
    headline figures are timings, so that seeds do not share the cores)."""
    parser.add_argument("--seeds", type=int, default=3,
                        help="Independent seeds (seed, seed+1, …), each a full run; 1 = "
                        "only --seed, written straight to --out.")  # fmt: skip
    parser.add_argument(
        "--jobs",
        type=int,
        default=jobs,
        help=f"Seeds run at once, each on one thread (default {jobs}).",
    )
    parser.add_argument("--recombine", action="store_true",
                        help="Only combine the seed folders already in --out (after a "
                        "change to how runs are summarised; nothing is rerun).")  # fmt: skip


def _relay(stream, seed: int, lines: list[str]) -> None:
    """Copy a child's stderr to ours, each line prefixed with its seed; keep the tail."""
    for line in iter(stream.readline, ""):
        lines.append(line)
        del lines[:-20]
        progress.stage(f"[seed {seed}] {line.rstrip()}")  # our heartbeat then knows it


def _run_children(script: str, seeds: list[int], out: Path, jobs: int) -> None:
    pending = list(seeds)
    running: list[tuple[int, subprocess.Popen, threading.Thread, list[str]]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < jobs:
            seed = pending.pop(0)
            command = [sys.executable, script, *sys.argv[1:], "--seeds", "1",
                       "--seed", str(seed), "--out", str(out / f"seed-{seed}")]  # fmt: skip
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)  # fmt: skip
            tail: list[str] = []
            relay = threading.Thread(target=_relay, args=(child.stderr, seed, tail), daemon=True)
            relay.start()
            running.append((seed, child, relay, tail))
        time.sleep(0.2)
        for entry in list(running):
            seed, child, relay, tail = entry
            if child.poll() is None:
                continue
            relay.join()
            running.remove(entry)
            if child.returncode != 0:
                failed.append(f"seed {seed} exited {child.returncode}: "
                              + (tail[-1].strip() if tail else "no output"))  # fmt: skip
    if failed:
        raise SystemExit("; ".join(failed))


def combine(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The combined results of one study's runs (one per seed, in seed order)."""
    trimmed = [{k: v for k, v in run.items() if k not in _PER_RUN_FIELDS} for run in runs]
    return {
        "seeds": seeds,
        "numerics": runs[0].get("numerics"),
        "across_seeds": summarise_runs(trimmed),
    }


def run_over_seeds(script: str, args: argparse.Namespace, *, study: str) -> bool:
    """Run ``script`` once per seed and write the combined results (see the module
    docstring); ``False`` when ``--seeds 1`` asks for a single run in this process."""
    if args.seeds < 1 or args.jobs < 1:
        raise SystemExit("--seeds and --jobs must be at least 1")
    if args.seeds == 1:
        return False
    started = time.perf_counter()
    seeds = [args.seed + i for i in range(args.seeds)]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.recombine:
        previous = out / "results.json"
        seconds = json.loads(previous.read_text()).get("seconds") if previous.exists() else None
    else:
        progress.stage(f"[{study}] {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
                       f"{min(args.jobs, len(seeds))} at a time")  # fmt: skip
        _run_children(str(Path(script).resolve()), seeds, out, args.jobs)
        seconds = time.perf_counter() - started
    try:
        runs = [json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in seeds]
    except FileNotFoundError as missing:
        raise SystemExit(f"{study}: no results for a seed ({missing.filename})") from None
    combined = combine(runs, seeds)
    combined["seconds"] = seconds  # the run's wall time (kept when only recombining)
    _report(study, combined, seeds).write(out, combined, json_name="results.json")
    progress.stage(f"[{study}] wrote {out / 'results.json'} ({len(seeds)} seeds)")
    return True


def _report(study: str, combined: dict[str, Any], seeds: list[int]) -> Report:
    from readme_results import render_study  # sibling scripts: the README's tables
    from seed_figures import figures

    report = Report(f"{study}: {len(seeds)} seeds")
    links = ", ".join(f"[seed {s}](seed-{s}/report.md)" for s in seeds)
    report.add_text(f"Figures are mean (min–max) over the seeds; a single figure was the "
                    f"same in every seed. Each seed's own report and plots: {links}.\n\n"
                    + render_study(study, combined))  # fmt: skip
    for filename, fig, caption in figures(study, combined["across_seeds"]):
        report.add_figure(filename, fig, caption)
    return report
