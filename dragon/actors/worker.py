"""The stateless Ray remote function that runs one attempt of one task.

It reports ``executing`` itself (the moment a worker has the task), gives the task a
scratch directory that is removed whatever happens, and turns every exception into a
status error string. Worker deaths are not handled here: the job manager sees them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import ray

from dragon import registry
from dragon.actors.status import Finished, Reported, Started
from dragon.errors import InternalError, TaskError, status_error
from dragon.status import TaskRecord

log = logging.getLogger(__name__)


@ray.remote(max_retries=0)
def execute(
    record: TaskRecord,
    attempt: int,
    status_shard: ray.actor.ActorHandle,
    scratch_root: str,
    task_modules: list[str],
) -> Finished:
    registry.load(task_modules)
    # Wait for "executing" to be durable: it must not race the final status.
    ray.get(status_shard.update.remote(record.key, Started(attempt)))
    scratch = Path(scratch_root) / record.key
    scratch.mkdir(parents=True, exist_ok=True)

    def report(progress: Any, partial_result: dict[str, Any] | None) -> None:
        status_shard.update.remote(record.key, Reported(progress, partial_result))

    ctx = registry.TaskContext(record.key, record.account, attempt, scratch, report)
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _json_safe(result: Any) -> Any:
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise InternalError("the task produced a result that is not JSON") from exc
