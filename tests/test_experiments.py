"""Experiment scripts reproduce: the same seed gives the same results.json, timings aside."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vtrust.report import without_timings

ROOT = Path(__file__).resolve().parents[1]


THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "VTRUST_THREADS")  # fmt: skip


def run_twice(tmp_path, script, *args):
    """Two runs of a study, with one and with two threads asked for in the environment
    (what torch and the BLAS libraries read): the setting must not change a number."""
    outs = []
    for run, threads in (("a", "1"), ("b", "2")):
        out = tmp_path / run
        command = [sys.executable, str(ROOT / "experiments" / script), *args, "--out", str(out)]
        env = {**os.environ, **dict.fromkeys(THREAD_SETTINGS, threads)}
        subprocess.run(command, check=True, capture_output=True, timeout=600, env=env)
        outs.append(json.loads((out / "results.json").read_text()))
    return outs


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("scrambling.py", ["--keys", "2", "--archs", "mlp"]),
        ("attacks.py", ["--attacks", "knockoff-attacker-400,prune-global", "--thief-steps", "150"]),
        ("proofs.py", ["--no-timit", "--repeats", "1"]),
    ],
)
def test_two_runs_with_one_seed_give_identical_results(tmp_path, script, args):
    first, second = run_twice(tmp_path, script, *args)
    assert without_timings(first) == without_timings(second)
    assert first != without_timings(first)  # timings were present and set aside


def test_without_timings_keeps_everything_else():
    data = {"seconds": 1.0, "fidelity": 0.9, "rows": [{"check_s": 2, "n": 3}],
            "extra_prover_over_field": 0.1, "stages": {"train": 1}, "calls": 4}  # fmt: skip
    assert without_timings(data) == {"fidelity": 0.9, "rows": [{"n": 3}], "calls": 4}
