"""Numbers that do not depend on the machine's thread settings: what a study calls first.

torch's and the BLAS libraries' reductions split their work by thread count, so one seed
gives different weights with one and with two threads (measured: a digits MLP's weight
hash after 5 epochs differs between 1 and 2 threads, while each count repeats exactly),
and training amplifies the last-bit differences into different fidelities. A study
therefore runs all its numerics on :data:`NUMERIC_THREADS` thread whatever ``--threads``
or ``VTRUST_THREADS`` say, with MKL's conditional numerical reproducibility
(``MKL_CBWR=AUTO,STRICT``) and a fixed MKL thread count (``MKL_DYNAMIC=FALSE``), set
before torch loads. Measured cost (2 cores, one run): none on digits-sized models (5
epochs of the MLP 0.11 s vs 0.12 s with two threads, the CNN 0.35 s vs 0.34 s); 1.5× for
an MNIST-sized CNN epoch (2.05 s vs 1.36 s).

Bit-exact means: the same seed, CPU type and library builds. MKL's ``AUTO`` branch
follows the CPU's instruction set, so another CPU or torch build may differ in the last
bits, which training amplifies; :func:`numerics_record` states all of it in a study's
results.
"""

from __future__ import annotations

import os
import platform
import sys

NUMERIC_THREADS = 1
_ENVIRONMENT = {
    "MKL_CBWR": "AUTO,STRICT",
    "MKL_DYNAMIC": "FALSE",
}


def pin_numerics() -> None:
    """Fix what a study's numbers depend on: MKL's reproducibility settings (a user's own
    win) and one compute thread for torch and every BLAS/OpenMP pool (always: the thread
    setting must not change a result). Call before anything imports torch."""
    for name, value in _ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(NUMERIC_THREADS)  # spawned workers inherit it
    from vtrust.threads import set_threads

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

    return {
        "threads": torch.get_num_threads(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
        "cpu": _cpu(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "bit_exact_when": "same seed, CPU type and library builds",
        "bit_exact": "every figure but the timings, whatever the thread settings",
        "not_bit_exact": "timings (seconds, milliseconds, time ratios, modelled throughput "
        "built on measured times); on another CPU type or torch/MKL build the last bits of "
        "training may differ and grow into different figures — `make reproduce-check` "
        "then compares with the committed spread over seeds instead",
    }
