"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable


def best(fn: Callable[[], object], runs: int = 3) -> float:
    """The shortest of ``runs`` wall-clock timings of ``fn``: the least disturbed run."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cpu_seconds() -> float:
    """CPU time used so far by this process (all its threads) and its waited-for children:
    unlike wall time, it does not grow when other work shares the cores."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_with_cpu(fn: Callable[[], object], runs: int = 3) -> tuple[float, float]:
    """(shortest wall time, smallest CPU time) over ``runs`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), cpu_seconds()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(cpu_seconds() - c)
    return min(walls), min(cpus)


def load() -> str:
    """The machine's load averages, printed with figures taken on shared cores."""
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
