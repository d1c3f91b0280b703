"""Autoscaling the API on the requests that cost it work, not on the ones that wait.

A replica holds thousands of long polls (``block=true``, streams) for almost nothing,
yet Serve counts each as an ongoing request for as long as it lasts: scaling on that
count would keep the most replicas up for clients that only wait. Each replica counts
its long polls (:class:`LongPolls`, reported through ``record_autoscaling_stats``) and
:func:`scale_on_quick_requests`, the policy of deploy/serve.yaml, takes them out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from ray.serve.config import AutoscalingContext

METRIC = "long_polls"


class LongPolls:
    """The requests of one replica that are waiting on task statuses."""

    def __init__(self) -> None:
        self.open = 0

    @contextmanager
    def held(self, waiting: bool = True) -> Iterator[None]:
        """Count the body of a ``with`` as a long poll when ``waiting``."""
        self.open += waiting
        try:
            yield
        finally:
            self.open -= waiting

    async def stream(self, lines: AsyncIterator[str]) -> AsyncIterator[str]:
        """A streamed response body, counted until it ends or its client goes away."""
        with self.held():
            async for line in lines:
                yield line

    def stats(self) -> dict[str, float]:
        return {METRIC: float(self.open)}


def scale_on_quick_requests(ctx: AutoscalingContext) -> tuple[float, dict[str, Any]]:
    """Serve's default rule (ongoing requests / target_ongoing_requests) on the ongoing
    requests that are not long polls. Serve applies min/max, delays and factors after."""
    if ctx.current_num_replicas == 0:
        return ctx.target_num_replicas, {}
    waiting = sum((ctx.aggregated_metrics or {}).get(METRIC, {}).values())
    quick = max(ctx.total_num_requests - waiting, 0.0)
    assert ctx.config is not None  # Serve passes the deployment's autoscaling config
    return quick / ctx.config.get_target_ongoing_requests(), {}
