"""The job manager: a detached actor that owns every task from ``create`` to its end.

Serve replicas only hand tasks over, so a replica restart or scale-down kills nothing.
Each account has a queue; at most ``max_concurrent_tasks`` of its tasks run at once.
When a worker process or node dies, the task is tried again, up to
``task_max_attempts`` times. On start (first start, actor restart or service restart)
every task the journal has not seen end is queued again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import exceptions as rex

from dragon import registry
from dragon.accounts import Account
from dragon.actors import storage
from dragon.actors.callbacks import ACTOR_NAME as CALLBACKS_ACTOR
from dragon.actors.status import Finished, Statuses, shard_of
from dragon.actors.worker import execute
from dragon.config import Settings
from dragon.errors import AccountLimitError, CanceledError, RequestError, WorkerCrashedError
from dragon.journal import open_journal
from dragon.placement import GpuRule
from dragon.status import TaskRecord, TaskStatus

log = logging.getLogger(__name__)

ACTOR_NAME = "dragon-jobs"
CANCELED = str(CanceledError("the task was canceled by its owner"))
CANCEL_GRACE = 5.0  # seconds a canceled task has to stop before its worker is killed

# Failures of the machinery, not of the task: worth another attempt elsewhere.
RETRYABLE = (
    rex.WorkerCrashedError,
    rex.NodeDiedError,
    rex.OutOfMemoryError,
    rex.ObjectLostError,
    rex.LocalRayletDiedError,
    rex.RaySystemError,
)


@dataclass
class _AccountQueue:
    limit: int
    pending: deque[TaskRecord] = field(default_factory=deque)
    running: int = 0

    @property
    def open_tasks(self) -> int:
        return len(self.pending) + self.running


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=100_000)
class JobManager:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._journal = open_journal(settings)
        self._statuses = Statuses.lookup(settings)
        self._storage = [
            ray.get_actor(storage.actor_name(i), namespace=settings.ray_namespace) for i in range(settings.storage_actors)
        ]
        self._queues: dict[str, _AccountQueue] = {}
        self._running: dict[str, ray.ObjectRef] = {}
        self._open: dict[str, TaskRecord] = {}  # queued or running here
        self._canceled: set[str] = set()
        self._resumed: set[str] = set()  # re-queued at start: an earlier run may have stored outputs
        self._creating: dict[tuple[str, str], asyncio.Future] = {}
        self._recovered: asyncio.Task | None = None
        self._gpus = GpuRule(settings.use_gpus)
        registry.load(settings.task_modules)

    async def ready(self) -> dict[str, Any]:
        """Answers once tasks from before a restart are queued again."""
        await self._recover_once()
        return {"running": len(self._running), "queued": sum(len(q.pending) for q in self._queues.values())}

    def settings(self) -> Settings:
        return self._settings

    def account(self, *, name: str | None = None, secret_hash: str | None = None, api_key_hash: str | None = None) -> Account | None:
        if name is not None:
            return self._journal.account(name)
        if secret_hash is not None:
            return self._journal.account_by_secret_hash(secret_hash)
        if api_key_hash is not None:
            return self._journal.account_by_api_key_hash(api_key_hash)
        return None

    async def submit(
        self, account: Account, tasks: list[tuple[TaskRecord, Any]], idempotency: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Queue tasks; each item is (record, validation error or None). Returns public statuses in order.

        With ``idempotency`` = (client key, hash of the request's tasks), a repeat within
        the window answers the first request's tasks instead; a different request under
        the same key is refused. The claim is taken before any await, so concurrent
        duplicates are serialised by this actor.
        """
        await self._recover_once()
        if idempotency is None:
            return await self._submit(account, tasks)
        earlier = await self._idempotent(account, idempotency, [record.key for record, _ in tasks])
        if earlier is not None:
            return earlier
        try:
            return await self._submit(account, tasks)
        finally:
            self._creating.pop((account.name, idempotency[0])).set_result(None)

    async def _idempotent(
        self, account: Account, idempotency: tuple[str, str], keys: list[str]
    ) -> list[dict[str, Any]] | None:
        client_key, body_hash = idempotency
        now = time.time()
        since = now - self._settings.idempotency_window
        earlier = self._journal.claim_idempotency(account.name, client_key, body_hash, keys, since, now)
        if earlier is None:
            self._creating[(account.name, client_key)] = asyncio.get_running_loop().create_future()
            return None
        earlier_hash, earlier_keys = earlier
        if earlier_hash != body_hash:
            raise RequestError("Idempotency-Key", "this key was used for a different request", "header")
        pending = self._creating.get((account.name, client_key))
        if pending is not None:  # the first request is still creating its tasks
            await asyncio.shield(pending)
        return [found[1] for found in await self._statuses.get(earlier_keys) if found is not None]

    async def cancel(self, account: str, keys: list[str]) -> dict[str, str]:
        """Cancel queued and running tasks of ``account``: key -> canceled | ended | unknown."""
        found = await self._statuses.details([k for k in keys if k not in self._open])
        outcome: dict[str, str] = {}
        for key in dict.fromkeys(keys):
            record = self._open.get(key) or (found[key][0] if key in found else None)
            if record is None or record.account != account:
                outcome[key] = "unknown"
                continue
            self._canceled.add(key)
            queue = self._queues.get(account)
            if queue is not None and record in queue.pending:
                queue.pending.remove(record)
                self._open.pop(key, None)
            changed = await self._statuses.update(key, Finished(error=CANCELED))
            outcome[key] = "canceled" if changed is not None else "ended"
            ref = self._running.get(key)
            if ref is not None:
                ray.cancel(ref)  # KeyboardInterrupt in the task: its cleanup runs
                asyncio.ensure_future(self._force_cancel(key, ref))
        return outcome

    async def _force_cancel(self, key: str, ref: ray.ObjectRef) -> None:
        """Work that ignores the interrupt (native encoders) has its worker killed."""
        await asyncio.sleep(CANCEL_GRACE)
        if self._running.get(key) is ref:
            ray.cancel(ref, force=True)

    async def _submit(self, account: Account, tasks: list[tuple[TaskRecord, Any]]) -> list[dict[str, Any]]:
        queue = self._queue(account.name, account.max_concurrent_tasks)
        runnable = [record for record, error in tasks if error is None]
        if queue.open_tasks + len(runnable) > account.max_queued_tasks:
            raise AccountLimitError(f"account limits reached: at most {account.max_queued_tasks} open tasks")
        items = []
        for record, error in tasks:
            status = TaskStatus.queued(record)
            if error is not None:
                status = Finished(error=error).apply(status)
            items.append((record, status))
        docs = await self._statuses.create(items)
        queue.pending.extend(runnable)
        self._open.update((record.key, record) for record in runnable)
        self._pump(queue)
        return [docs[record.key] for record, _ in tasks]

    # internals

    def _queue(self, account: str, limit: int) -> _AccountQueue:
        queue = self._queues.get(account)
        if queue is None:
            queue = self._queues[account] = _AccountQueue(limit=limit)
        queue.limit = limit
        return queue

    def _pump(self, queue: _AccountQueue) -> None:
        while queue.pending and queue.running < queue.limit:
            record = queue.pending.popleft()
            queue.running += 1
            asyncio.create_task(self._run(record, queue))

    async def _run(self, record: TaskRecord, queue: _AccountQueue) -> None:
        try:
            outcome = await self._attempts(record)
            # The worker sent it already; sending it again makes sure it is durable (a no-op if so).
            await self._statuses.update(record.key, outcome)
        except Exception:  # the status shard is restarting: its retries failed too
            log.exception("could not finish task %s", record.key)
        finally:
            self._running.pop(record.key, None)
            self._open.pop(record.key, None)
            if record.key in self._canceled:
                self._canceled.discard(record.key)
                for scratch in self._settings.scratch_dir.glob(f"{record.key}-*"):
                    shutil.rmtree(scratch, ignore_errors=True)
            queue.running -= 1
            self._pump(queue)

    async def _attempts(self, record: TaskRecord) -> Finished:
        """The outcome of the first attempt whose worker survives, or a WorkerCrashedError."""
        task_type = registry.get(record.task_name)
        options: dict[str, Any] = {"num_cpus": 1.0}
        if task_type is not None:
            res = task_type.resources
            options = {"num_cpus": res.cpus}
            if res.gpu and self._gpus.ask():
                options["num_gpus"] = res.gpu
            if res.memory_mb:
                options["memory"] = res.memory_mb * 1024 * 1024
        attempts = self._settings.task_max_attempts
        last: Exception | None = None
        storage = self._storage[shard_of(record.key, len(self._storage))]
        if record.key in self._resumed:  # what a run before the restart stored belongs to no result
            self._resumed.discard(record.key)
            await storage.discard.remote(record.account, record.key)
        for attempt in range(1, attempts + 1):
            if record.key in self._canceled:
                return Finished(error=CANCELED)
            ref = execute.options(**options).remote(
                record,
                attempt,
                self._statuses.shard(record.key),
                storage,
                self._settings,
            )
            self._running[record.key] = ref
            try:
                return await ref
            except (rex.TaskCancelledError, *RETRYABLE) as exc:
                if record.key in self._canceled:
                    return Finished(error=CANCELED)
                if isinstance(exc, rex.TaskCancelledError):
                    raise
                last = exc
                log.warning("task %s: attempt %d of %d lost its worker: %s", record.key, attempt, attempts, type(exc).__name__)
        reason = type(last).__name__ if last else "unknown failure"
        # What the dead attempts stored belongs to no result: it would be orphaned.
        await storage.discard.remote(record.account, record.key)
        return Finished(error=str(WorkerCrashedError(f"the worker running this task died on all {attempts} attempts ({reason})")))

    async def _recover_once(self) -> None:
        failed = self._recovered is not None and self._recovered.done() and self._recovered.exception()
        if self._recovered is None or failed:
            self._recovered = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._recovered)

    async def _recover(self) -> None:
        ray.get_actor(CALLBACKS_ACTOR, namespace=self._settings.ray_namespace).start.remote()
        unfinished = await self._statuses.unfinished()
        limits: dict[str, int] = {}
        for record, _ in unfinished:
            if record.account not in limits:
                account = self._journal.account(record.account)
                limits[record.account] = account.max_concurrent_tasks if account else self._settings.default_max_concurrent_tasks
            self._queue(record.account, limits[record.account]).pending.append(record)
            self._open[record.key] = record
            self._resumed.add(record.key)
        if unfinished:
            log.warning("re-queued %d tasks that had not ended", len(unfinished))
        for queue in self._queues.values():
            self._pump(queue)
