"""The evaluation matrix: the store, resuming after a kill, and the Ray executor."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vtrust.cli import run
from vtrust.evaluation.matrix import MatrixSpec, run_matrix
from vtrust.evaluation.store import CellStore

# random-uniform-2k with a 150-step thief: the matrix machinery, not the attack, is tested
ATTACK = str(Path(__file__).parent / "fixtures" / "random-uniform-fast.toml")


@pytest.fixture(scope="module")
def victim(tmp_path_factory):
    d = tmp_path_factory.mktemp("victim")
    assert run(["-q", "train", "--arch", "mlp", "--epochs", "8", "--out", str(d / "m.vtm")]) == 0
    return d / "m.vtm"


def deterministic(result):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result["cells"]]


def test_the_store_skips_torn_lines(tmp_path):
    store = CellStore(tmp_path / "cells.jsonl")
    store.append({"key": "a", "v": 1})
    with open(store.path, "a") as handle:
        handle.write('{"key": "b", "v"')  # a write cut short by a kill
    assert list(store.records()) == ["a"]


def test_a_finished_matrix_is_not_rerun_and_results_repeat(victim, tmp_path):
    spec = MatrixSpec(str(victim), ("none", "prada"), (ATTACK,), seeds=2, budget=60)
    first = run_matrix(spec, tmp_path / "a")
    assert first["skipped"] == 0 and len(first["cells"]) == 4
    again = run_matrix(spec, tmp_path / "a")
    assert again["skipped"] == 4 and again["cells"] == first["cells"]
    fresh = run_matrix(spec, tmp_path / "b")  # the same seeds from scratch
    assert deterministic(fresh) == deterministic(first)
    seeds = {r["seed"]: r["result"]["fidelity"] for r in first["cells"] if r["defense"] == "none"}
    assert len(seeds) == 2


def test_killing_evaluate_mid_run_and_restarting_finishes_without_redoing(victim, tmp_path):
    out = tmp_path / "m"
    args = [sys.executable, "-m", "vtrust", "evaluate", "--target", str(victim),
            "--defense", "none", "--defense", "round-2", "--defense", "top-1",
            "--attack", ATTACK, "--budget", "60", "--out", str(out), "--json"]  # fmt: skip
    env = {**os.environ, "VTRUST_QUIET": "1"}
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = CellStore(out / "cells.jsonl")
    deadline = time.monotonic() + 120
    while len(store.records()) < 1 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = store.records()
    assert 1 <= len(before) < 3, "the kill should land mid-run"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["skipped"] == len(before) and result["cells"] == 3
    lines = [json.loads(line) for line in store.path.read_text().splitlines() if line.strip()]
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys)) == 3  # no cell ran twice
    assert all(store.records()[k] == v for k, v in before.items())  # kept as they were


def test_ray_executor_gives_the_local_results(victim, tmp_path):
    pytest.importorskip("ray")
    spec = MatrixSpec(str(victim), ("none", "top-1"), (ATTACK,), seeds=1, budget=60)
    local = run_matrix(spec, tmp_path / "local")
    distributed = run_matrix(spec, tmp_path / "ray", executor="ray", workers=2)
    assert distributed["skipped"] == 0
    assert deterministic(distributed) == deterministic(local)


def test_unknown_names_and_executors_fail_before_running(victim, tmp_path, capsys):
    code = run(["evaluate", "--target", str(victim), "--defense", "nope", "--attack", ATTACK,
                "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2 and "nope" in capsys.readouterr().err
    assert not (tmp_path / "x" / "cells.jsonl").exists()
