"""The stateless Ray remote function that runs one attempt of one task.

It reports ``executing`` and the final status itself, saving the job manager a round
trip per task; gives the task a scratch directory that is removed whatever happens,
the safe fetcher for inputs and the storage actors for outputs; and turns every
exception into a status error string. Worker deaths are not handled here: the job
manager sees them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable

import ray
from ray.exceptions import RayTaskError

from dragon import registry
from dragon.actors.status import Finished, Reported, Started
from dragon.config import Settings
from dragon.errors import InternalError, TaskError, status_error
from dragon.platforms import youtube
from dragon.status import TaskRecord, now_iso
from dragon.storage import Backend, open_backend
from dragon.storage.fetch import Fetched, Fetcher

log = logging.getLogger(__name__)

STARTED_DELAY = 0.02  # seconds; tasks that end sooner skip the separate "executing" change


@ray.remote(max_retries=0)
def execute(
    record: TaskRecord,
    attempt: int,
    status_shard: ray.actor.ActorHandle,
    storage: ray.actor.ActorHandle,
    settings: Settings,
) -> Finished:
    registry.load(settings.task_modules)
    if attempt > 1:  # a new attempt starts clean: no orphaned output of a dead one
        ray.get(storage.discard.remote(record.account, record.key))
    io = _WorkerIO(settings, record, status_shard, storage, Started(attempt, now_iso()))
    ctx = registry.TaskContext(record.key, record.account, attempt, io.scratch, io, settings, record.task_store)
    try:
        outcome = run_task(ctx, record)
    finally:
        if io.scratch.exists():
            shutil.rmtree(io.scratch, ignore_errors=True)
    return io.finish(outcome)


class RunIO:
    """Inputs and outputs of one run of a task function: the safe fetcher into the run's
    scratch directory, and the storage actor for outputs. Batch rows use it as is."""

    def __init__(self, settings: Settings, storage: ray.actor.ActorHandle, record: TaskRecord, scratch: Path):
        self._settings = settings
        self._storage = storage
        self._record = record
        self._stored_main = False
        self.scratch = scratch

    def fetch(self, url: str, max_bytes: int | None = None, truncate: bool = False) -> Fetched:
        backend = _backend(self._settings)
        fetcher = Fetcher(self._settings, read_own=lambda u: _own(backend, u))
        self.scratch.mkdir(parents=True, exist_ok=True)
        return fetcher.fetch(url, self.scratch / f"input-{uuid.uuid4().hex[:8]}", max_bytes, truncate)

    def store(self, path: Path, extension: str, content_type: str, main: bool = True) -> str:
        main = main and not self._stored_main
        self._stored_main = self._stored_main or main
        r = self._record
        if main and r.task_store.get("type") == "youtube":
            return _to_youtube(path, r.task_store, self._settings)
        try:
            for source in (str(path.absolute()), path.read_bytes):
                data = source() if callable(source) else source
                url = ray.get(
                    self._storage.store.remote(r.account, r.key, r.task_name, r.task_store, data, extension, content_type, main)
                )
                if url is not None:
                    return url
        except RayTaskError as exc:  # the storage actor's own error, e.g. StorageError
            raise exc.cause from None
        raise InternalError("the storage actor could not read the output file")

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None:
        """Progress of a run nobody watches goes nowhere."""


class _WorkerIO(RunIO):
    """Inputs, outputs and status reports of one attempt.

    "executing" goes out once the task has run for STARTED_DELAY or reports progress;
    a task that ends sooner goes straight to its final status, which carries the start
    time. That halves the status traffic of tiny tasks. Calls from one caller reach an
    actor in order, so nothing sent here can overtake what was sent before it.
    """

    def __init__(self, settings: Settings, record: TaskRecord, shard: ray.actor.ActorHandle,
                 storage: ray.actor.ActorHandle, started: Started):
        super().__init__(settings, storage, record, settings.scratch_dir / f"{record.key}-{started.attempt}")
        self._shard = shard
        self._started = started
        self._sent = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(STARTED_DELAY, self.started)
        self._timer.daemon = True
        self._timer.start()

    def started(self) -> None:
        with self._lock:
            if not self._sent:
                self._shard.update.remote(self._record.key, self._started)
                self._sent = True

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None:
        self.started()
        self._shard.update.remote(self._record.key, Reported(progress, partial_result))

    def finish(self, outcome: Finished) -> Finished:
        """Send the final status without waiting: a worker blocked in ray.get gives its
        CPU back and makes Ray start more workers. The job manager sends the returned
        outcome again, which the shard ignores if this one arrived first."""
        self._timer.cancel()
        with self._lock:
            if not self._sent:
                outcome = dataclasses.replace(outcome, started=self._started)
                self._sent = True
        self._shard.update.remote(self._record.key, outcome)
        return outcome


_backends: dict[str, Backend] = {}


def _to_youtube(path: Path, store: dict[str, Any], settings: Settings) -> str:
    """The ``youtube`` store: the main output goes to YouTube from the worker itself (an
    upload may take minutes; the storage actors stay free). Other files go to volatile."""
    meta = youtube.Metadata(store["title"], store.get("description") or "", store.get("tags") or [],
                            store.get("category_id") or 22, store.get("privacy_status") or "public")
    return youtube.upload(path, meta, store["access_token"], store["developer_key"], settings)


def _backend(settings: Settings) -> Backend:
    """One backend (and S3 client) per worker process and configuration."""
    config = settings.model_dump_json()
    if config not in _backends:
        _backends[config] = open_backend(settings)
    return _backends[config]


def _own(backend: Backend, url: str) -> Iterable[bytes] | None:
    name = backend.name_of(url)
    return backend.read(name) if name else None


def run_task(ctx: registry.TaskContext, record: TaskRecord) -> Finished:
    try:
        task_type = registry.get(record.task_name)
        if task_type is None:
            raise InternalError(f"task type {record.task_name!r} is not installed on this worker")
        result = task_type.run(ctx, task_type.parse(record.params))
        return Finished(result=_json_safe(result), warnings=ctx.warnings)
    except Exception as exc:  # every failure becomes a status; the worker lives on
        if not isinstance(exc, TaskError):
            log.exception("task %s (%s) failed", record.key, record.task_name)
        return Finished(error=status_error(exc), warnings=ctx.warnings)


def _json_safe(result: Any) -> Any:
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise InternalError("the task produced a result that is not JSON") from exc
