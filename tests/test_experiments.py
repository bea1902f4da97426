"""Experiment scripts reproduce: the same seed gives the same results.json, timings aside."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vtrust.report import without_timings

ROOT = Path(__file__).resolve().parents[1]


def run_twice(tmp_path, script, *args):
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        command = [sys.executable, str(ROOT / "experiments" / script), *args, "--out", str(out)]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        outs.append(json.loads((out / "results.json").read_text()))
    return outs


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("scrambling.py", ["--keys", "2", "--archs", "mlp"]),
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
