"""The stateless Ray remote function that runs one attempt of one task.

It reports ``executing`` and the final status itself, saving the job manager a round
trip per task; gives the task a scratch
directory that is removed whatever happens; and turns every exception into a status
error string. Worker deaths are not handled here: the job manager sees them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import ray

from dragon import registry
from dragon.actors.status import Finished, Reported, Started
from dragon.errors import InternalError, TaskError, status_error
from dragon.status import TaskRecord, now_iso

log = logging.getLogger(__name__)


STARTED_DELAY = 0.02  # seconds; tasks that end sooner skip the separate "executing" change


@ray.remote(max_retries=0)
def execute(
    record: TaskRecord,
    attempt: int,
    status_shard: ray.actor.ActorHandle,
    scratch_root: str,
    task_modules: list[str],
) -> Finished:
    registry.load(task_modules)
    reporter = _Reporter(status_shard, record.key, Started(attempt, now_iso()))
    scratch = Path(scratch_root) / record.key
    ctx = registry.TaskContext(record.key, record.account, attempt, scratch, reporter.report)
    try:
        outcome = _run(ctx, record)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return reporter.finish(outcome)


class _Reporter:
    """Sends one attempt's changes to the status shard, in order.

    "executing" goes out once the task has run for STARTED_DELAY or reports progress;
    a task that ends sooner goes straight to its final status, which carries the start
    time. That halves the status traffic of tiny tasks. Calls from one caller reach an
    actor in order, so nothing sent here can overtake what was sent before it.
    """

    def __init__(self, shard: ray.actor.ActorHandle, key: str, started: Started):
        self._shard = shard
        self._key = key
        self._started = started
        self._sent = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(STARTED_DELAY, self.started)
        self._timer.daemon = True
        self._timer.start()

    def started(self) -> None:
        with self._lock:
            if not self._sent:
                self._shard.update.remote(self._key, self._started)
                self._sent = True

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None:
        self.started()
        self._shard.update.remote(self._key, Reported(progress, partial_result))

    def finish(self, outcome: Finished) -> Finished:
        """Send the final status without waiting: a worker blocked in ray.get gives its
        CPU back and makes Ray start more workers. The job manager sends the returned
        outcome again, which the shard ignores if this one arrived first."""
        self._timer.cancel()
        with self._lock:
            if not self._sent:
                outcome = dataclasses.replace(outcome, started=self._started)
                self._sent = True
        self._shard.update.remote(self._key, outcome)
        return outcome


def _run(ctx: registry.TaskContext, record: TaskRecord) -> Finished:
    try:
        task_type = registry.get(record.task_name)
        if task_type is None:
            raise InternalError(f"task type {record.task_name!r} is not installed on this worker")
        result = task_type.run(ctx, task_type.parse(record.params))
        return Finished(result=_json_safe(result))
    except Exception as exc:  # every failure becomes a status; the worker lives on
        if not isinstance(exc, TaskError):
            log.exception("task %s (%s) failed", record.key, record.task_name)
        return Finished(error=status_error(exc))


def _json_safe(result: Any) -> Any:
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise InternalError("the task produced a result that is not JSON") from exc
