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
