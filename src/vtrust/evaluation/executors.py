"""Where cells run: in this process, in a local process pool (the default), or as Ray
tasks. Each executor yields results as cells finish, in any order; the caller stores them.

The pool starts its workers with ``spawn`` (numba, torch and OpenMP state do not survive
``fork`` safely). Ray connects to ``address`` (or ``RAY_ADDRESS``), else starts a local
instance with ``num_cpus`` CPUs.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any

from vtrust.errors import InputError


def run_inline(fn: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
    for item in items:
        yield fn(item)


def run_pool(fn: Callable[[Any], Any], items: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1 or len(items) <= 1:
        yield from run_inline(fn, items)
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def run_ray(
    fn: Callable[[Any], Any], items: list[Any], *, address: str | None, num_cpus: int
) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise InputError("the Ray executor needs ray: pip install 'vtrust[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(fn)
        pending = [task.remote(item) for item in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def execute(
    fn: Callable[[Any], Any],
    items: list[Any],
    *,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> Iterator[Any]:
    """Results of ``fn`` over ``items`` as they finish."""
    if executor not in ("local", "ray"):
        raise InputError(f"unknown executor {executor!r}: use local or ray")
    if not items:
        return iter(())
    if executor == "local":
        return run_pool(fn, items, workers)
    return run_ray(fn, items, address=address, num_cpus=max(1, workers))
