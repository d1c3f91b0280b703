"""The stateless Ray remote function that runs one attempt of one task.

It returns the task's outcome to the shard that owns the task (its return value is the
final status change: no separate message); reports ``executing`` and progress with
one-way calls; gives the task a scratch directory that is removed whatever happens,
the safe fetcher for inputs and its node's storage actor for outputs; and turns every
exception into a status error string. Worker deaths are not handled here: the shard
sees them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import ray
from ray.exceptions import RayTaskError

from dragon import registry
from dragon.actors.messages import Finished, Reported, Started
from dragon.actors.storage import local_storage
from dragon.config import Settings
from dragon.errors import CanceledError, CouldNotDownloadError, InternalError, TaskError, status_error
from dragon.platforms import youtube
from dragon.status import TaskRecord, now_iso
from dragon.storage import Backend, open_backend
from dragon.storage.fetch import Fetched, Fetcher

log = logging.getLogger(__name__)

STARTED_DELAY = 0.02  # seconds; tasks that end sooner skip the separate "executing" change
PROGRESS_INTERVAL = 0.1  # seconds between progress reports of one task (partial results always go)
REPORT_WAIT = 10.0  # seconds a finished task waits for its last partial result to be applied
HELPERS_WAIT = 10.0  # seconds a task gives missing pool members to be placed


@ray.remote(max_retries=0)
def execute(records: list[TaskRecord], attempt: int, settings: Settings, shard: int) -> list[Finished]:
    """One attempt of each of ``records`` in a stateless worker (see execute_records)."""
    return execute_records(records, attempt, settings, shard)


def execute_records(
    records: list[TaskRecord], attempt: int, settings: Settings, shard: int, *, pooled: bool = False
) -> list[Finished]:
    """One attempt of each of ``records`` (tasks of one kind, one after another: usually
    one, or a group of tiny ones), owned by shard ``shard``. ``pooled``: in a pool member
    (dragon/actors/pool.py), where a cancel is a flag the task's reports look at, not an
    interrupt."""
    owner = _owner(settings.ray_namespace, shard)
    registry.load(settings.task_modules)
    storage = local_storage(settings)
    return [_attempt(record, attempt, settings, owner, storage, pooled) for record in records]


def _attempt(
    record: TaskRecord,
    attempt: int,
    settings: Settings,
    owner: ray.actor.ActorHandle,
    storage: ray.actor.ActorHandle,
    pooled: bool,
) -> Finished:
    if attempt > 1:  # a new attempt starts clean: no orphaned output of a dead one
        ray.get(storage.discard.remote(record.account, record.key))
    io = _WorkerIO(settings, record, owner, storage, Started(attempt, now_iso()), pooled)
    ctx = registry.TaskContext(
        record.key, record.account, attempt, io.scratch, io, settings, record.task_store, lambda: _helpers(settings)
    )
    began = time.monotonic()
    try:
        outcome = run_task(ctx, record)
    finally:
        io.close()
        if io.scratch.exists():
            shutil.rmtree(io.scratch, ignore_errors=True)
    return io.finish(outcome, time.monotonic() - began)


def _helpers(settings: Settings) -> list[ray.actor.ActorHandle]:
    """The pool members, started where missing and given HELPERS_WAIT to be placed (a
    movie would rather start its segments than wait longer for room); none when they
    cannot be listed."""
    if settings.worker_pools == "off":
        return []
    from dragon.actors.pool import control_actor  # the pool module imports this one

    try:
        members: ray.ObjectRef = control_actor(settings).pool_members.remote(wait=HELPERS_WAIT)
        return [handle for _, handle in ray.get(members, timeout=HELPERS_WAIT + 10)]
    except Exception:
        log.warning("could not list the pools' members: segments run as plain tasks", exc_info=True)
        return []


_owners: dict[tuple[str, int], ray.actor.ActorHandle] = {}


def _owner(namespace: str, shard: int) -> ray.actor.ActorHandle:
    """The handle of the shard that owns the task (looked up once per worker process)."""
    handle = _owners.get((namespace, shard))
    if handle is None:
        from dragon.actors.shard import actor_name  # the shard module imports this one

        handle = _owners[(namespace, shard)] = ray.get_actor(actor_name(shard), namespace=namespace)
    return handle


class RunIO:
    """Inputs and outputs of one run of a task function: the safe fetcher into the run's
    scratch directory, and the node's storage actor for outputs. Batch rows use it as is."""

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
        dest = self.scratch / f"input-{uuid.uuid4().hex[:8]}"
        local = None if truncate else self.local(url)
        if local is not None:
            return _linked(local, dest, fetcher.limit(max_bytes), url)
        return fetcher.fetch(url, dest, max_bytes, truncate)

    def local(self, url: str) -> Path | None:
        """One of our outputs that is a file on this node: the local store's file. Tasks
        read their inputs and never write to them, so it is used in place."""
        backend = _backend(self._settings)
        name = backend.name_of(url) if isinstance(url, str) else None
        return backend.local_path(name) if name else None

    def store(self, path: Path, extension: str, content_type: str, main: bool = True) -> str:
        main = main and not self._stored_main
        self._stored_main = self._stored_main or main
        r = self._record
        if main and r.task_store.get("type") == "youtube":
            return _to_youtube(path, r.task_store, self._settings)
        try:
            url = cast(
                str,
                ray.get(
                    self._storage.store.remote(
                        r.account, r.key, r.task_name, r.task_store, str(path.absolute()), extension, content_type, main
                    )
                ),
            )
            return url
        except RayTaskError as exc:  # the storage actor's own error, e.g. StorageError
            raise exc.cause from None

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None:
        """Progress of a run nobody watches goes nowhere."""


class _WorkerIO(RunIO):
    """Inputs, outputs and status reports of one attempt.

    "executing" goes out once the task has run for STARTED_DELAY or reports progress;
    a task that ends sooner goes straight to its final status, which carries the start
    time either way. That halves the status traffic of tiny tasks. Progress reports are
    sent at most every PROGRESS_INTERVAL, and only when the value changed.
    """

    def __init__(
        self,
        settings: Settings,
        record: TaskRecord,
        owner: ray.actor.ActorHandle,
        storage: ray.actor.ActorHandle,
        started: Started,
        pooled: bool = False,
    ):
        super().__init__(settings, storage, record, settings.scratch_dir / f"{record.key}-{started.attempt}")
        self._owner = owner
        self._started = started
        self._pooled = pooled
        self._sent = False
        self._lock = threading.Lock()
        self._progress: tuple[float, Any] = (0.0, None)
        self._partial: ray.ObjectRef | None = None  # the last report that carried a partial result
        self._timer = _timer.arm(STARTED_DELAY, self.started)

    def started(self) -> None:
        with self._lock:
            if not self._sent:
                self._owner.report.remote(self._record.key, self._started)
                self._sent = True

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None:
        if self._pooled and ray.get_runtime_context().is_canceled():
            raise CanceledError("the task was canceled by its owner")
        self.started()
        now = time.monotonic()
        if partial_result is None:
            last_at, last = self._progress
            if progress == last or now - last_at < PROGRESS_INTERVAL:
                return
        self._progress = (now, progress)
        sent: Any = self._owner.report.remote(self._record.key, Reported(progress, partial_result))
        if partial_result is not None:
            self._partial = sent

    def close(self) -> None:
        _timer.disarm(self._timer)

    def finish(self, outcome: Finished, seconds: float) -> Finished:
        """The outcome the shard commits; it carries the start, whether or not the
        "executing" change was sent. The outcome travels apart from the reports, so a task
        that sent partial results waits for the last to be applied: streams see each before
        the end. (Progress arriving after the end is dropped, as it should be.)"""
        if self._partial is not None:
            try:
                ray.get(self._partial, timeout=REPORT_WAIT)
            except Exception:  # the shard restarting: the outcome matters more
                log.warning("the last report of %s was not acknowledged", self._record.key)
        return Finished(
            outcome.result,
            outcome.error,
            self._started,
            outcome.warnings,
            seconds,
            ray.get_runtime_context().get_node_id(),
        )


class _Timer:
    """One thread per worker process that calls functions once their delay has passed,
    unless disarmed first (no thread is started per task; a pool member runs several
    tasks at once, so there may be several jobs)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._jobs: dict[int, tuple[float, Callable[[], None]]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, delay: float, fn: Callable[[], None]) -> int:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="dragon-started", daemon=True)
                self._thread.start()
            self._next += 1
            self._jobs[self._next] = (time.monotonic() + delay, fn)
            self._cv.notify()
            return self._next

    def disarm(self, job: int) -> None:
        with self._cv:
            self._jobs.pop(job, None)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                job, (at, fn) = min(self._jobs.items(), key=lambda item: item[1][0])
                remaining = at - time.monotonic()
                if remaining > 0:
                    self._cv.wait(remaining)
                    continue
                del self._jobs[job]
            try:
                fn()
            except Exception:
                log.warning("could not report a task as executing", exc_info=True)


_timer = _Timer()


_backends: dict[str, Backend] = {}


def _to_youtube(path: Path, store: dict[str, Any], settings: Settings) -> str:
    """The ``youtube`` store: the main output goes to YouTube from the worker itself (an
    upload may take minutes; the storage actors stay free). Other files go to volatile."""
    meta = youtube.Metadata(
        store["title"],
        store.get("description") or "",
        store.get("tags") or [],
        store.get("category_id") or 22,
        store.get("privacy_status") or "public",
    )
    return youtube.upload(path, meta, store["access_token"], store["developer_key"], settings)


def _backend(settings: Settings) -> Backend:
    """One backend (and S3 client) per worker process and configuration."""
    config = settings.model_dump_json()
    if config not in _backends:
        _backends[config] = open_backend(settings)
    return _backends[config]


def _linked(source: Path, dest: Path, limit: int, url: str) -> Fetched:
    """A local output as a fetched input: a hard link (no bytes copied), or a copy
    across file systems; the size limit holds as for a download."""
    size = source.stat().st_size
    if size > limit:
        raise CouldNotDownloadError(f"{url}: the file is larger than the limit of {limit} bytes")
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
    return Fetched(dest, size, None, url=url)


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
