"""Start-up of a fresh ``vtrust`` process.

* CPU time (user + system, from the kernel's accounting of the child) of the light
  commands: ``--version`` (goal ≤ 0.3 s), ``--help``, ``catalog list`` and ``info MODEL``
  on a vtrust model file (goal ≤ 1 s).
* A second ``vtrust verify`` process (the compiled kernels come from numba's on-disk
  cache) against the in-process warm verify plus the import time of what verify
  imports: goal ratio ≤ 2.

The default test run executes each once; with ``--benchmark-enable`` the figures in
``extra_info`` are medians of 5 (CPU) or 3 (wall) processes.
"""

import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from vtrust.cli import run

ENTRY = "from vtrust.cli import main; main()"
VERIFY_IMPORTS = "import vtrust.cli, vtrust.models.files, vtrust.proofs.verification"


def child_cpu_seconds(*argv: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", ENTRY, *argv], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def wall_seconds(code: str, *argv: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, small_mlp):
    from vtrust.models import save_model

    path = tmp_path_factory.mktemp("startup") / "mlp.safetensors"
    save_model(path, small_mlp, {"dataset": {"spec": "digits", "split_seed": 0}})
    return path


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["catalog", "list"], ["info", "MODEL"]],
    ids=["version", "help", "catalog-list", "info"],
)
def test_fresh_process_cpu(benchmark, argv, model_file):
    argv = [str(model_file) if a == "MODEL" else a for a in argv]
    benchmark.pedantic(child_cpu_seconds, args=argv, rounds=1, iterations=1)
    if benchmark.enabled:
        benchmark.extra_info["cpu_s"] = statistics.median(
            child_cpu_seconds(*argv) for _ in range(5)
        )


def test_second_process_verify(benchmark, quad_files, digits, tmp_path):
    _, _, tuned = quad_files
    np.save(tmp_path / "x.npy", digits.test.x[:8])
    proof = tmp_path / "p.json"
    assert run(["-q", "prove", "--model", str(tuned), "--circuit", "quad-digits",
                "--input", str(tmp_path / "x.npy"), "--out", str(proof)]) == 0  # fmt: skip
    argv = ("-q", "verify", "--model", str(tuned), "--proof", str(proof), "--json")
    wall_seconds(ENTRY, *argv)  # the first process fills the cache (if nothing did yet)
    benchmark.pedantic(wall_seconds, args=(ENTRY, *argv), rounds=1, iterations=1)
    if benchmark.enabled:
        second = statistics.median(wall_seconds(ENTRY, *argv) for _ in range(3))
        imports = statistics.median(wall_seconds(VERIFY_IMPORTS) for _ in range(3))
        assert run(list(argv)) == 0  # in-process: the first call compiles or loads
        started = time.perf_counter()
        assert run(list(argv)) == 0
        warm = time.perf_counter() - started
        benchmark.extra_info.update(
            second_process_s=second, imports_s=imports, warm_in_process_s=warm,
            ratio=second / (warm + imports), goal_ratio=2.0,
        )  # fmt: skip
    assert json.loads(subprocess.run([sys.executable, "-c", ENTRY, *argv], capture_output=True,
                                     text=True).stdout)["accepted"]  # fmt: skip
