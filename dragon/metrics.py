"""Dragon's own metrics, exported through Ray's metrics system (``ray.util.metrics``):
every Ray node serves them on its Prometheus endpoint beside Ray's (named ``ray_dragon_*``
there), so an operator who scrapes a Ray cluster has them with nothing more to set up.
docs/deployment.md ("Metrics") lists them; deploy/grafana-dashboard.json draws them.

Each is recorded where its event happens: the shards (tasks created, ended, queue waits,
running and queued per account, callback deliveries), the workers' fetcher (bytes and
errors) and the storage actors (bytes written). Metric objects are made on first use in
each process; outside a Ray worker (the CLI, unit tests) recording them does nothing.
"""

from __future__ import annotations

import functools
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ray.util import metrics as ray_metrics

if TYPE_CHECKING:
    from dragon.journal import Delivery, Journal
    from dragon.status import TaskRecord, TaskStatus

SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]


@functools.cache
def _counter(name: str, description: str, *tags: str) -> ray_metrics.Counter:
    return ray_metrics.Counter(name, description=description, tag_keys=tags)


@functools.cache
def _gauge(name: str, description: str, *tags: str) -> ray_metrics.Gauge:
    return ray_metrics.Gauge(name, description=description, tag_keys=tags)


@functools.cache
def _histogram(name: str, description: str, *tags: str) -> ray_metrics.Histogram:
    return ray_metrics.Histogram(name, description=description, boundaries=SECONDS, tag_keys=tags)


# tasks: recorded by their shard


def task_created(record: TaskRecord) -> None:
    _counter("dragon_tasks_created", "Tasks created, by task type", "task_name").inc(
        tags={"task_name": record.task_name}
    )


def task_ended(task_name: str, status: TaskStatus | None, seconds: float | None = None) -> None:
    """A task's end, once committed; ``seconds``: how long its last attempt ran (none for
    a task that never ran: refused parameters, canceled while queued)."""
    if status is None or not status.ended:
        return
    tags = {"task_name": task_name}
    _counter("dragon_tasks_ended", "Tasks ended, by task type and status (success, error)", "task_name", "status").inc(
        tags={**tags, "status": status.status}
    )
    if seconds:
        _histogram(
            "dragon_task_duration_seconds", "How long tasks ran (their last attempt), by task type", "task_name"
        ).observe(seconds, tags=tags)


def task_started(record: TaskRecord, status: TaskStatus | None) -> None:
    """A task leaves its queue: how long it waited since it was created."""
    queued = status.events.get("queued") if status else None
    if queued:
        waited = (datetime.now(UTC) - datetime.fromisoformat(queued)).total_seconds()
        _histogram(
            "dragon_task_queue_wait_seconds",
            "How long tasks waited in their queue before starting, by task type",
            "task_name",
        ).observe(max(0.0, waited), tags={"task_name": record.task_name})


class Occupancy:
    """Running and queued tasks per account in one shard, as gauges (summed over shards by
    the dashboard). An account whose tasks are all gone is set to 0 once, then dropped."""

    def __init__(self, shard: int):
        self._shard = str(shard)
        self._shown: set[str] = set()

    def update(self, records: Iterable[TaskRecord], running: Iterable[str]) -> None:
        running = set(running)
        queued, busy = Tally[str](), Tally[str]()
        for record in records:
            (busy if record.key in running else queued)[record.account] += 1
        accounts = set(queued) | set(busy)
        for account in accounts | self._shown:
            tags = {"account": account, "shard": self._shard}
            _gauge("dragon_tasks_running", "Tasks running now, by account and shard", "account", "shard").set(
                busy[account], tags=tags
            )
            _gauge("dragon_tasks_queued", "Tasks queued now, by account and shard", "account", "shard").set(
                queued[account], tags=tags
            )
        self._shown = accounts


# inputs and outputs


def fetched(size: int) -> None:
    if size > 0:  # Ray's counters refuse an increment of 0 (an empty input is fetched too)
        _counter("dragon_fetch_bytes", "Bytes of task inputs fetched").inc(size)


def fetch_failed() -> None:
    _counter("dragon_fetch_errors", "Task input fetches that failed (CouldNotDownloadError)").inc()


def stored(size: int, kind: str) -> None:
    """Bytes written to storage: task outputs by ``task_store`` type, or client uploads."""
    if size <= 0:  # Ray's counters refuse an increment of 0
        return
    _counter(
        "dragon_storage_bytes_written",
        "Bytes written to storage, by kind (persistent, volatile, s3_signed, upload)",
        "kind",
    ).inc(size, tags={"kind": kind})


# callbacks


class DeliveriesObserved:
    """The journal as a shard's Deliverer sees it, counting each delivery attempt as it is
    saved: the Deliverer saves a delivery once per attempt, with its attempts so far and
    its state (pending: a retry is due; delivered; failed: retries are over)."""

    def __init__(self, journal: Journal):
        self._journal = journal

    def save_delivery(self, delivery: Delivery) -> None:
        self._journal.save_delivery(delivery)
        if len(delivery.attempts) > 1:
            _counter("dragon_callback_retries", "Callback attempts after the first").inc()
        if delivery.state != "pending":
            _counter("dragon_callback_deliveries", "Callbacks done, by outcome (delivered, failed)", "state").inc(
                tags={"state": delivery.state}
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)
