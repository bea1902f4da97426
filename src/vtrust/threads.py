"""The process's compute threads: torch's intra-op pool and every BLAS/OpenMP pool.

Small per-query work (a detector's distance update, a poisoning transform) is dominated
by thread hand-offs when the machine is loaded — PRADA at 10k stored queries measured 36
ms per query with the default pools against 0.19 ms with one thread — while training
wants the cores. So by default the defenses inside an oracle run on one thread
(:func:`small_work`) and everything else keeps the libraries' defaults; a count the user
chooses (:func:`set_threads`, from ``--threads`` or ``VTRUST_THREADS``) applies to all of
it instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from vtrust.errors import InputError

_limits = None  # the threadpoolctl limiter, kept alive so the limit holds
_chosen: int | None = None  # the user's count, once set_threads ran
_blas: list | None = None  # the BLAS libraries' thread controls, found on first use


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
    global _limits, _chosen
    import threadpoolctl
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(count)
    torch.set_num_threads(count)
    _limits = threadpoolctl.threadpool_limits(limits=count)
    _chosen = count


@contextlib.contextmanager
def small_work() -> Iterator[None]:
    """Run the body on one torch and one BLAS thread (restored after), unless the user
    chose a thread count, which then holds. Costs ≈ 0.01 ms per entry (direct calls into
    the BLAS libraries loaded when it is first used, not threadpoolctl's limiter)."""
    global _blas
    if _chosen is not None:
        yield
        return
    import torch

    if _blas is None:
        import threadpoolctl

        libraries = threadpoolctl.ThreadpoolController().lib_controllers
        _blas = [lib for lib in libraries if lib.user_api == "blas"]
    before = torch.get_num_threads(), [lib.num_threads for lib in _blas]
    torch.set_num_threads(1)
    for lib in _blas:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        for lib, count in zip(_blas, before[1], strict=True):
            lib.set_num_threads(count)
