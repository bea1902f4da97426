"""The process's compute threads: torch's intra-op pool and every BLAS/OpenMP pool.

Small per-query work (a detector's distance update, one oracle batch) is dominated by
thread hand-offs when the machine is loaded, so ``--threads 1`` can make it many times
faster; large training runs want the cores. :func:`set_threads` applies one count to all
pools; the CLI takes it from ``--threads`` or ``VTRUST_THREADS``.
"""

from __future__ import annotations

import os

from vtrust.errors import InputError

_limits = None  # the threadpoolctl limiter, kept alive so the limit holds


def requested(value: int | str | None = None) -> int | None:
    """The thread count asked for: ``value``, else ``VTRUST_THREADS``, else None (keep
    the libraries' defaults). InputError for anything but a positive integer."""
    raw = value if value is not None else os.environ.get("VTRUST_THREADS") or None
    if raw is None:
        return None
    try:
        count = int(raw)
    except (TypeError, ValueError):
        raise InputError(f"threads must be a positive integer, got {raw!r}") from None
    if count < 1:
        raise InputError(f"threads must be a positive integer, got {raw!r}")
    return count


def set_threads(count: int) -> None:
    """Use ``count`` threads in torch and in every BLAS/OpenMP library loaded now (and
    set the environment variables libraries loaded later read)."""
    global _limits
    import threadpoolctl
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(count)
    torch.set_num_threads(count)
    _limits = threadpoolctl.threadpool_limits(limits=count)
