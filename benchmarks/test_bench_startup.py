"""CPU time of a fresh ``vtrust`` process (user + system, from the kernel's accounting
of the child): ``vtrust --version`` (goal ≤ 0.3 s) and ``vtrust --help``. The default
test run executes each once; ``extra_info['cpu_s']`` is the median of 5 processes."""

import resource
import statistics
import subprocess
import sys

import pytest

ENTRY = "from vtrust.cli import main; main()"


def child_cpu_seconds(*argv: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", ENTRY, *argv], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.parametrize("argv", [["--version"], ["--help"]], ids=["version", "help"])
def test_fresh_process_cpu(benchmark, argv):
    benchmark.pedantic(child_cpu_seconds, args=argv, rounds=1, iterations=1)
    if benchmark.enabled:
        benchmark.extra_info["cpu_s"] = statistics.median(
            child_cpu_seconds(*argv) for _ in range(5)
        )
