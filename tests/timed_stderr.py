"""Run a process and timestamp every line it writes to stderr (a pipe, so not a
terminal: what a CI log sees)."""

from __future__ import annotations

import subprocess
import threading
import time


def timed_lines(argv, cwd, env=None, timeout=900):
    """``(exit code, total seconds, [(seconds since start, line), ...], stdout)``."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    started = time.monotonic()
    stamps: list[tuple[float, str]] = []
    out: list[str] = []

    def read_err():
        for line in proc.stderr:
            stamps.append((time.monotonic() - started, line.rstrip()))

    def read_out():
        out.append(proc.stdout.read())

    readers = [threading.Thread(target=read_err), threading.Thread(target=read_out)]
    for reader in readers:
        reader.start()
    proc.wait(timeout=timeout)
    for reader in readers:
        reader.join()
    return proc.returncode, time.monotonic() - started, stamps, "".join(out)


def longest_silence(stamps, total):
    """The longest stretch without a line, from the start to the end of the process."""
    times = [0.0] + [t for t, _ in stamps] + [total]
    return max(b - a for a, b in zip(times, times[1:], strict=False))
