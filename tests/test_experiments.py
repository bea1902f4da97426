"""Experiment scripts reproduce: the same seed gives the same results.json, timings aside."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from timed_stderr import longest_silence, timed_lines

from vtrust.evaluation.spread import is_spread
from vtrust.report import without_timings

ROOT = Path(__file__).resolve().parents[1]


THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                   "VTRUST_THREADS")  # fmt: skip


def run_twice(tmp_path, script, *args):
    """Two runs of a study side by side, one with one and one with two threads asked for
    in the environment (what torch and the BLAS libraries read): the setting must not
    change a number. Each run computes on one thread, so the two share the cores. With
    smoke-test budgets (VTRUST_QUICK: ≤ 5 epochs, ≤ 200 queries) — 5 epochs are enough
    for the thread count to change a digits MLP's weights when nothing pins it."""
    children = []
    for run, threads in (("a", "1"), ("b", "2")):
        out = tmp_path / run
        command = [sys.executable, str(ROOT / "experiments" / script), *args, "--out", str(out)]
        env = {**os.environ, **dict.fromkeys(THREAD_SETTINGS, threads), "VTRUST_QUICK": "1"}
        log = (tmp_path / f"{run}.log").open("w")
        children.append((out, log, subprocess.Popen(command, stdout=log, stderr=log, env=env)))
    outs = []
    for out, log, child in children:
        code = child.wait(timeout=600)
        log.close()
        assert code == 0, Path(log.name).read_text()[-3000:]
        outs.append(json.loads((out / "results.json").read_text()))
    return outs


# each study at a reduced size (≈ 10–40 s a run)
REDUCED = [
    ("scrambling.py", ["--keys", "2", "--archs", "mlp", "--seeds", "1"]),
    ("attacks.py", ["--attacks", "knockoff-attacker-400,prune-global", "--thief-steps", "150",
                    "--seeds", "1"]),
    ("proofs.py", ["--no-timit", "--repeats", "1", "--sweep-points", "2", "--seeds", "1"]),
    ("watermark.py", ["--null-models", "2", "--attacks", "ftal,knockoff-attacker-400",
                      "--thief-steps", "100", "--users", "4", "--seeds", "1"]),
    ("defenses.py", ["--clients", "3", "--attacks", "random-uniform-2k", "--thief-steps", "100",
                     "--sweeps", "round-2", "--seeds", "1"]),
    ("matrix.py", ["--defenses", "none,prada", "--attacks", "random-uniform-2k", "--budget",
                   "100", "--workers", "1", "--seeds", "1"]),
    ("enclave.py", ["--trials", "20", "--fractions", "0.1", "--seeds", "1"]),
    ("byom.py", ["--no-full", "--seeds", "1"]),
    ("ownership.py", ["--null-models", "5", "--di-samples", "20", "--attacks",
                      "knockoff-attacker-400", "--seeds", "1"]),
    ("entangled.py", ["--null-models", "2", "--attacks", "ftal", "--budgets", "150",
                      "--epochs", "2", "--seeds", "1"]),
    ("metering.py", ["--budgets", "20,60", "--thief-steps", "100", "--seeds", "1"]),
    ("adaptive.py", ["--attacks", "knockoff-sybil", "--defenses", "shift-refuse",
                     "--thief-steps", "50", "--seeds", "1"]),
    ("stealing.py", ["--attacks", "knockoff-attacker-400", "--thief-steps", "50", "--clients",
                     "3", "--seeds", "1"]),
    ("poisoning.py", ["--defenses", "mad-argmax", "--budget", "100", "--thief-steps", "30",
                      "--seeds", "1"]),
    ("stealers.py", ["--attacks", "cloudleak-2k", "--defenses", "none", "--thief-steps", "30",
                     "--seeds", "1"]),
    ("int8.py", ["--points", "1", "--no-timit", "--no-probes", "--repeats", "1"]),
]  # fmt: skip


@pytest.mark.parametrize(("script", "args"), REDUCED, ids=[s for s, _ in REDUCED])
def test_two_runs_with_one_seed_give_identical_results(tmp_path, script, args):
    first, second = run_twice(tmp_path, script, *args)
    assert without_timings(first) == without_timings(second)
    assert first["numerics"]["threads"] == 1


def test_without_timings_keeps_everything_else():
    data = {"seconds": 1.0, "fidelity": 0.9, "rows": [{"check_s": 2, "n": 3}],
            "extra_prover_over_field": 0.1, "stages": {"train": 1}, "calls": 4,
            "peak_mb": 950.0}  # fmt: skip
    assert without_timings(data) == {"fidelity": 0.9, "rows": [{"n": 3}], "calls": 4}


def test_reproduce_check_names_each_figure_that_left_the_committed_spread(tmp_path):
    results, readme = tmp_path / "results", tmp_path / "README.md"
    readme.write_text("# A README\n")
    command = [sys.executable, str(ROOT / "experiments" / "reproduce.py"), "--only",
               "scrambling", "--results", str(results), "--readme", str(readme),
               "--study-args", "--keys 2 --archs mlp --seeds 2"]  # fmt: skip
    code, total, stamps, _ = timed_lines(command, tmp_path)
    assert code == 0, stamps[-20:]
    assert longest_silence(stamps, total) <= 10.0, stamps  # a log hears from the study
    assert any(line.startswith("[seed 1] [scrambling]") for _, line in stamps)
    assert "### Weight scrambling" in readme.read_text()
    section = readme.read_text()
    assert "2 seeds (0, 1)" in section and "Chaotic Weights" in section  # the paper beside
    assert re.search(r"\| mlp \| 0\.\d{4} \(0\.\d{4}–0\.\d{4}\) \|", section)  # mean (min–max)

    path = results / "scrambling" / "results.json"
    committed = json.loads(path.read_text())
    mlp = committed["across_seeds"]["models"]["mlp"]
    if is_spread(mlp["accuracy"]):  # claim an accuracy no rerun gives
        mlp["accuracy"].update(min=1.5, max=1.6, mean=1.55)
    else:
        mlp["accuracy"] = 1.5
    mlp["unscrambling_bit_exact"] = False
    path.write_text(json.dumps(committed))
    check = subprocess.run([*command, "--check"], capture_output=True, text=True, timeout=600)
    assert check.returncode == 1
    assert "scrambling: models.mlp.accuracy: 0.9" in check.stderr
    assert "scrambling: models.mlp.unscrambling_bit_exact: True differs" in check.stderr
    # exactly the two altered figures: the rerun reproduced every other one
    assert "check failed: 2 figures left the committed spread" in check.stderr


def test_a_papers_figure_path_may_name_a_key_that_holds_dots():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from readme_results import figure_at
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    results = {"points": {"rs[beta=1.0,gamma=0.4]": {"fidelity": 0.2}, "rs": {"fidelity": 0.9}}}
    assert figure_at(results, "points.rs[beta=1.0,gamma=0.4].fidelity") == 0.2
    assert figure_at(results, "points.rs.fidelity") == 0.9
    assert figure_at(results, "points.rs[beta=2.0].fidelity") is None
    assert figure_at(results, "points.rs.fidelity.more") is None


def test_reproduce_skips_an_mnist_study_without_the_files_and_says_so(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# A README\n")
    command = [sys.executable, str(ROOT / "experiments" / "reproduce.py"), "--only",
               "poisoning-mnist", "--results", str(tmp_path / "results"), "--readme",
               str(readme), "--mnist", str(tmp_path / "no-mnist")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "poisoning-mnist: skipped (no MNIST IDX files in" in done.stderr
    assert "### Answer poisoning on MNIST" in readme.read_text()  # the section says not run
    assert not (tmp_path / "results" / "poisoning-mnist").exists()
