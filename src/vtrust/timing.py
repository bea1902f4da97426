"""Wall-clock timing for benchmarks and experiments that report ratios measured in one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def median_seconds(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (steadier than the best or the mean
    on a machine whose speed drifts between runs)."""
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def interleaved(a: Callable[[], Any], b: Callable[[], Any], rounds: int = 40) -> dict[str, float]:
    """``a`` and ``b`` timed alternately in ABBA order (so neither always runs on the
    other's warm caches or spinning threads): their median seconds and the median of the
    per-round ratios b/a, as ``{"a_s", "b_s", "ratio"}``."""
    a(), b()  # warm up
    ta, tb = [], []
    for i in range(max(1, rounds)):
        order = (a, b) if i % 2 == 0 else (b, a)
        spent = []
        for fn in order:
            started = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - started)
        first, second = spent if i % 2 == 0 else spent[::-1]
        ta.append(first)
        tb.append(second)
    ratios = np.asarray(tb) / np.asarray(ta)
    return {"a_s": float(np.median(ta)), "b_s": float(np.median(tb)),
            "ratio": float(np.median(ratios))}  # fmt: skip
