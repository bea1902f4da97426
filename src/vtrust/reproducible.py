"""Numbers that do not depend on the machine: what a study calls first.

Two things make one seed give different figures on different runs of the same code:

* **threads** — torch's and the BLAS libraries' reductions split their work by thread
  count (measured: a digits MLP's weight hash after 5 epochs differs between 1 and 2
  threads, while each count repeats exactly), and training amplifies the last-bit
  differences into different fidelities;
* **the CPU's instruction set** — MKL, oneDNN, torch's vectorised kernels, OpenBLAS and
  numpy's own transcendental loops each pick a code path by CPU feature (AVX-512 on one
  machine, AVX2 on another), and the paths round differently. Measured on an Intel Xeon
  (AVX-512) against results made on an AMD EPYC with the same seeds and library builds:
  every victim's weights differed, and 19 figures of the eight studies left the
  committed three-seed spread.

A study therefore runs all its numerics on :data:`NUMERIC_THREADS` thread whatever
``--threads`` or ``VTRUST_THREADS`` say, and pins every library's code path to one
that every x86-64 CPU with AVX2 runs alike (set before numpy and torch load):
MKL's conditional numerical reproducibility on its ``COMPATIBLE`` branch (the only
branch MKL guarantees on non-Intel CPUs), torch's kernels at ``avx2``, oneDNN off
(its kernels and blocking follow the CPU; torch falls back to its own), OpenBLAS's
Haswell kernels and numpy's dispatch limited to AVX2. A variable the user set is kept
(and recorded). On a CPU without AVX2 — or another architecture — the pins that need it
are skipped, and :func:`numerics_record` says the results are not comparable bit for
bit. Measured cost: see docs/FINDINGS.md ("Reproducing the studies").
"""

from __future__ import annotations

import os
import platform
import sys

NUMERIC_THREADS = 1
_ALWAYS = {
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "MKL_DYNAMIC": "FALSE",
}
# Pins that name AVX2 code paths: only where the CPU has them (numpy refuses to start
# when told to enable a feature the CPU lacks).
_AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_ENABLE_CPU_FEATURES": "SSE,SSE2,SSE3,SSSE3,SSE41,POPCNT,SSE42,AVX,F16C,FMA3,AVX2",
}
_AVX2_FLAGS = {"avx", "avx2", "fma", "f16c", "sse4_2", "popcnt"}
_RECORDED = (*_ALWAYS, *_AVX2)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def portable_code_paths() -> bool:
    """Whether this CPU runs the AVX2 code paths the pins select (x86-64 with AVX2)."""
    return platform.machine().lower() in {"x86_64", "amd64"} and _cpu_flags() >= _AVX2_FLAGS


def pin_numerics(*, portable: bool = True) -> None:
    """Fix what a study's numbers depend on: one compute thread for torch and every
    BLAS/OpenMP pool (always: the thread setting must not change a result) and, with
    ``portable``, the libraries' code paths (see the module docstring). Studies whose
    headline figures are timings pass ``portable=False``: they keep each library's
    fastest path for this CPU (MKL's ``AUTO`` branch in its reproducible mode, oneDNN),
    so their other figures are bit-exact on the same CPU type only. Call before anything
    imports numpy or torch."""
    pins = dict(_ALWAYS) if portable else {"MKL_CBWR": "AUTO,STRICT", "MKL_DYNAMIC": "FALSE"}
    if portable and portable_code_paths():
        pins.update(_AVX2)
    for name, value in pins.items():
        os.environ.setdefault(name, value)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(NUMERIC_THREADS)  # spawned workers inherit it
    import torch

    from vtrust.threads import set_threads

    if portable:
        torch.backends.mkldnn.enabled = False
    set_threads(NUMERIC_THREADS)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numerics_record() -> dict[str, object]:
    """What a study's numbers were computed with — the conditions of bit-exactness."""
    import numpy
    import torch

    portable = portable_code_paths() and all(
        os.environ.get(name) == value for name, value in {**_ALWAYS, **_AVX2}.items()
    )
    return {
        "threads": torch.get_num_threads(),
        "code_paths": {name: os.environ.get(name, "") for name in _RECORDED},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": bool(torch.backends.mkldnn.enabled),
        "cpu": _cpu(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "portable": portable,
        "bit_exact_when": (
            "same seed and library builds, on any x86-64 CPU with AVX2"
            if portable
            else "same seed, CPU type and library builds (this CPU could not take the "
            "portable code paths, or a pin was overridden)"
        ),
        "bit_exact": "every figure but the timings, whatever the thread settings",
        "not_bit_exact": "timings (seconds, milliseconds, time ratios, modelled throughput "
        "built on measured times); with other library builds the last bits of training may "
        "differ and grow into different figures — `make reproduce-check` then compares "
        "with the committed spread over seeds instead",
    }
