"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable


def best(fn: Callable[[], object], runs: int = 3) -> float:
    """The shortest of ``runs`` wall-clock timings of ``fn``: the least disturbed run."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
