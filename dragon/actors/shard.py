"""Task shards: each owns the tasks whose key falls in it, from create to end.

A shard (``dragon-shard-N``, a detached async actor) is at once the status store and
the job manager of its tasks, so one task costs one actor call to create and none after:

1. ``create`` admits the request's tasks within the account's limits (leases from the
   account's home shard, dragon/actors/ledger.py), commits their ``queued`` statuses to
   the journal (group commit: one transaction for everything queued meanwhile), and only
   then answers; with ``block=true`` it answers once they have ended.
2. It starts each task as a stateless Ray task (``execute``, dragon/actors/worker.py)
   that it owns, bound to a node with room (dragon/actors/dispatch.py); the worker's
   return value *is* the outcome, committed and published here. Workers report
   ``executing`` and progress with one-way calls.
3. A lost worker or node is retried (``task_max_attempts``); cancel interrupts, then kills.
4. Statuses are published only once committed; long polls (``block``, streams) wait on
   them here (dragon/actors/book.py). Its tasks' callbacks are sent from here too.
5. On start (first start, actor restart, service restart) it queues again every task of
   its bucket the journal has not seen end: execution is at-least-once.

The service picks a shard per create request (so load spreads) and draws the tasks'
keys so that ``shard_of(key)`` names it: any process routes any key with no lookup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import ray
from ray import exceptions as rex
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dragon import metrics, pipelines, registry
from dragon.accounts import Account
from dragon.actors.book import Found, StatusBook
from dragon.actors.callbacks import Deliverer
from dragon.actors.dispatch import Dispatch, Slot
from dragon.actors.ledger import Home, Ledger, LimitReached, Scheduler, home_of
from dragon.actors.messages import Change, Details, Finished, Holding, Idempotency, Submission
from dragon.actors.pool import PoolView
from dragon.actors.storage import local_storage
from dragon.actors.waits import Waits
from dragon.actors.worker import execute
from dragon.config import Settings
from dragon.errors import (
    AccountLimitError,
    CanceledError,
    InvalidRequestError,
    UnavailableError,
    UnknownTaskError,
    WorkerCrashedError,
)
from dragon.journal import History, Journal, open_journal
from dragon.placement import GpuRule, task_nodes
from dragon.status import ENDED, TaskRecord, TaskStatus, shard_of

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTOR_PREFIX = "dragon-shard-"
CANCELED = str(CanceledError("the task was canceled by its owner"))
CANCEL_GRACE = 5.0  # seconds a canceled task has to stop before its worker is killed
TICK = 1.0  # seconds between looks at stalled queues
NODES_EVERY = 2  # ticks between looks at the cluster's nodes (for binding tasks to them)
REMOTES_KEPT = 1024  # kinds of ask x nodes whose ``execute`` options are kept built
WATCH_POLL = 60.0  # seconds of one long poll on another shard for the end of a task used here

# Failures of the machinery, not of the task: worth another attempt elsewhere.
RETRYABLE = (
    rex.WorkerCrashedError,
    rex.NodeDiedError,
    rex.OutOfMemoryError,
    rex.ObjectLostError,
    rex.LocalRayletDiedError,
    rex.RaySystemError,
    rex.RayActorError,  # a pool member died (dragon/actors/pool.py)
    rex.ActorUnavailableError,
)


def actor_name(shard: int) -> str:
    return f"{ACTOR_PREFIX}{shard}"


class Durations:
    """How long each task type takes to run, so that tiny tasks share Ray tasks.

    A Ray task costs the cluster about a millisecond of CPU to schedule and run, more
    than a tiny task itself (a hello, an image.info of a header). When many tasks of a
    kind whose runs take under ``TINY`` seconds start at once, they go in groups, about
    ``SPREAD`` groups so the cluster's workers still share them, of at most ``GROUP``.
    A task type's first runs go alone, until its duration is known.
    """

    TINY = 0.01
    SPREAD = 16
    GROUP = 32

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def note(self, task_name: str, seconds: float) -> None:
        known = self._seconds.get(task_name)
        self._seconds[task_name] = seconds if known is None else 0.8 * known + 0.2 * seconds

    def group_size(self, task_name: str, starting: int) -> int:
        seconds = self._seconds.get(task_name)
        if seconds is None or seconds > self.TINY:
            return 1
        return max(1, min(self.GROUP, -(-starting // self.SPREAD)))


@dataclass
class _Write:
    """What one caller queued for the next group commit."""

    created: list[tuple[TaskRecord, TaskStatus]]
    updated: list[TaskStatus]
    done: asyncio.Future


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=100_000)  # type: ignore[call-overload]  # Ray's stubs lack actor options
class TaskShard:
    def __init__(self, settings: Settings, shard: int, lease_token: int):
        """``lease_token``: the fencing token of the lease its head holds (dragon/actors/control.py);
        once another head has taken the lease, this shard's journal writes are refused."""
        self._settings = settings
        self._shard, self._shards = shard, settings.shards
        self._incarnation = uuid.uuid4().hex
        self._journal = open_journal(settings)
        self._journal.fence(lease_token)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._book = StatusBook()
        self._writes: list[_Write] = []
        self._flushing = False
        self._peers: dict[int, ray.actor.ActorHandle] = {}
        self._ledger = Ledger(self._shards, _Peers(self))
        self._scheduler = Scheduler(shard, self._incarnation, self._home, self._start)
        self._local_home = _LocalHome(self._ledger)
        self._records: dict[str, TaskRecord] = {}  # queued or running here
        self._starting: list[TaskRecord] = []
        self._durations = Durations()
        self._running: dict[str, ray.ObjectRef] = {}
        self._canceled: set[str] = set()
        self._resumed: set[str] = set()  # queued again at start: an earlier run may have stored outputs
        self._creating: dict[tuple[str, str], asyncio.Future] = {}
        self._waits = Waits()  # tasks queued until the tasks they use have ended (pipelines)
        self._made_on: dict[str, str] = {}  # node of an ended task a waiter uses, until published
        self._near: dict[str, str] = {}  # node a task should run on, where its input was made
        self._watching: dict[str, asyncio.Future] = {}  # long polls on other shards, by used key
        self._ticking: asyncio.Future | None = None
        self._occupancy = metrics.Occupancy(shard)
        self._deliverer = Deliverer(
            settings,
            cast(Journal, metrics.DeliveriesObserved(self._journal)),  # a view of the journal
            shard,
            self._shards,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="callbacks"),
        )
        self._gpus = GpuRule(settings.use_gpus)
        self._pools = PoolView(settings)
        self._pooled: dict[ray.ObjectRef, ray.actor.ActorHandle] = {}  # running in a pool member
        self._remotes: dict[tuple[float, float, int | None, str | None], Any] = {}
        self._dispatch = Dispatch() if settings.bind_tasks_to_nodes else None
        registry.load(settings.task_modules)
        # An async actor is built on its event loop: recovery starts now, also after a
        # crash, when nobody calls until a task is due.
        self._recovered: asyncio.Future = asyncio.ensure_future(self._recover())

    # life

    async def ready(self) -> dict[str, Any]:
        """Answers once the tasks from before a restart are queued again."""
        await self._recover_once()
        return {
            "shard": self._shard,
            "pid": os.getpid(),
            "running": len(self._running),
            "queued": len(self._records) - len(self._running),
            "held": self._dispatch.held if self._dispatch is not None else 0,
            "waiting": self._book.waiting,
        }

    def settings(self) -> Settings:
        return self._settings

    def demand(self) -> dict[float, int]:
        """What this shard has started and not seen end (dragon/actors/dispatch.py), for the
        autoscaler: CPUs of a Ray task -> how many."""
        return self._dispatch.demand() if self._dispatch is not None else {}

    async def accounts(self) -> list[Account]:
        return await self._db(self._journal.accounts)

    async def account(
        self, *, name: str | None = None, secret_hash: str | None = None, api_key_hash: str | None = None
    ) -> Account | None:
        if name is not None:
            return await self._db(self._journal.account, name)
        if secret_hash is not None:
            return await self._db(self._journal.account_by_secret_hash, secret_hash)
        if api_key_hash is not None:
            return await self._db(self._journal.account_by_api_key_hash, api_key_hash)
        return None

    # creating and running tasks

    async def create(self, submission: Submission) -> list[dict[str, Any]]:
        """Create the tasks (keys drawn for this shard); their public statuses, in order."""
        await self._recover_once()
        keys = [t.record.key for t in submission.tasks]
        if submission.idempotency is not None:
            earlier = await self._idempotent(submission.account.name, submission.idempotency, keys)
            if earlier is not None:
                return await self._answer(earlier, submission.wait)
            try:
                await self._create(submission)
            finally:
                self._creating.pop((submission.account.name, submission.idempotency.key)).set_result(None)
        else:
            await self._create(submission)
        return await self._answer(keys, submission.wait)

    async def _create(self, submission: Submission) -> None:
        account = submission.account
        runnable = [t.record for t in submission.tasks if t.error is None]
        self._scheduler.limits(account.name, account.max_concurrent_tasks, account.max_queued_tasks)
        if runnable:
            try:
                await self._scheduler.admit(account.name, len(runnable))
            except LimitReached:
                raise AccountLimitError() from None
        items = []
        for task in submission.tasks:
            status = TaskStatus.queued(task.record)
            if task.error is not None:
                status = Finished(error=task.error).apply(status) or status
            items.append((task.record, self._book.add(status)))
        # The tasks start while their creation is being written: their ends are written
        # after it, and nobody sees them before it has committed. Those that use others'
        # outputs keep their reserved open slots until they can start.
        ready = [r for r in runnable if not r.uses]
        written = asyncio.ensure_future(self._persist(items, []))
        self._records.update((r.key, r) for r in ready)
        self._scheduler.enqueue(account.name, ready, len(ready))
        try:
            await written
        except Exception:
            log.warning("could not write new tasks to the journal")
            self._book.forget(record.key for record, _ in items)
            for record in ready:
                self._abandon(record)
            self._scheduler.unreserve(account.name, len(runnable) - len(ready))
            raise UnavailableError() from None
        for record, status in items:
            metrics.task_created(record)
            metrics.task_ended(record.task_name, status)  # refused parameters: ended at once
        for record in runnable:
            if record.uses:
                await self._wait(record)

    def _abandon(self, record: TaskRecord) -> None:
        """A task whose creation was not written: out of the queue, or stopped at once."""
        if self._scheduler.cancel(record.account, record.key):
            self._records.pop(record.key, None)
            return
        self._canceled.add(record.key)
        self._drop_canceled()
        ref = self._running.get(record.key)
        if ref is not None and self._all_canceled(ref):
            ray.cancel(ref, force=True)

    async def _answer(self, keys: list[str], wait: float) -> list[dict[str, Any]]:
        await self._load(keys)
        if wait > 0:
            pending = self._book.unended(keys)
            if pending:
                await self._book.wait(pending, until_all_ended=True, timeout=wait)
        return [found[1] for found in self._book.found(keys) if found is not None]

    async def _idempotent(self, account: str, idempotency: Idempotency, keys: list[str]) -> list[str] | None:
        """The keys of an earlier request with the same Idempotency-Key, or None after
        claiming it for this one. Requests with one key all come to one shard, so
        concurrent duplicates wait here for the first to be created; only then is the
        claim read. A claim whose tasks are not in the journal is then one whose create
        failed (an account limit, the journal down, a shard killed mid-write): this
        request takes it over and creates its tasks."""
        while (pending := self._creating.get((account, idempotency.key))) is not None:
            await asyncio.shield(pending)  # the first request is still creating its tasks
        self._creating[(account, idempotency.key)] = asyncio.get_running_loop().create_future()
        try:
            earlier = await self._claim(account, idempotency, keys)
        except BaseException:
            self._creating.pop((account, idempotency.key)).set_result(None)
            raise
        if earlier is None:
            return None
        self._creating.pop((account, idempotency.key)).set_result(None)
        earlier_hash, earlier_keys = earlier
        if earlier_hash != idempotency.body_hash:
            raise InvalidRequestError("Idempotency-Key", "this key was used for a different request")
        return earlier_keys

    async def _claim(self, account: str, idempotency: Idempotency, keys: list[str]) -> tuple[str, list[str]] | None:
        now = time.time()
        since = now - self._settings.idempotency_window
        key, body_hash = idempotency.key, idempotency.body_hash
        earlier = await self._db(self._journal.claim_idempotency, account, key, body_hash, keys, since, now)
        if earlier is None or not earlier[1]:
            return earlier
        written: dict[str, TaskRecord] = await self._db(self._journal.records, earlier[1][:1])
        if written:  # tasks of one request are written in one transaction: the first tells
            return earlier
        if await self._db(self._journal.reclaim_idempotency, account, key, earlier[1], body_hash, keys, now):
            return None
        return await self._db(self._journal.claim_idempotency, account, key, body_hash, keys, since, now)

    def _start(self, record: TaskRecord) -> None:
        """Called for each task the scheduler starts; they leave together, once the
        scheduler is done starting, so that tiny tasks can share a Ray task."""
        metrics.task_started(record, self._book.latest(record.key))
        self._starting.append(record)
        if len(self._starting) == 1:
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        starting, self._starting = self._starting, []
        kinds: dict[str, list[TaskRecord]] = {}
        for record in starting:
            kinds.setdefault(record.task_name, []).append(record)
        for task_name, records in kinds.items():
            size = self._durations.group_size(task_name, len(records))
            for i in range(0, len(records), size):
                asyncio.ensure_future(self._run(records[i : i + size]))

    async def _run(self, records: list[TaskRecord]) -> None:
        try:
            outcomes = await self._attempts(records)
            await asyncio.gather(*(self._end(key, outcome) for key, outcome in outcomes.items()))
            for record in records:
                metrics.task_ended(record.task_name, self._book.latest(record.key), outcomes[record.key].seconds)
        except Exception:
            log.exception("could not finish tasks %s", [r.key for r in records])
        finally:
            for record in records:
                self._running.pop(record.key, None)
                self._records.pop(record.key, None)
                self._near.pop(record.key, None)
                if record.key in self._canceled:
                    self._canceled.discard(record.key)
                    for scratch in self._settings.scratch_dir.glob(f"{record.key}-*"):
                        shutil.rmtree(scratch, ignore_errors=True)
                self._scheduler.finished(record.account)

    async def _attempts(self, records: list[TaskRecord]) -> dict[str, Finished]:
        """Each task's outcome: that of the first attempt whose worker survives, or a
        WorkerCrashedError. Tasks of one kind run in one Ray task (dragon/actors/worker.py)."""
        task_type = registry.get(records[0].task_name)
        pooled = task_type is not None and task_type.resources.pooled
        near = self._near.get(records[0].key)
        bindable = self._bindable(records[0].task_name) if near is None else None
        dispatch = self._dispatch
        attempts = self._settings.task_max_attempts
        outcomes: dict[str, Finished] = {}
        last: Exception | None = None
        for record in records:
            if record.key in self._resumed:  # what a run before the restart stored belongs to no result
                self._resumed.discard(record.key)
                await local_storage(self._settings).discard.remote(record.account, record.key)
        for attempt in range(1, attempts + 1):
            left = [r for r in records if r.key not in outcomes]
            outcomes.update((r.key, Finished(error=CANCELED)) for r in left if r.key in self._canceled)
            left = [r for r in left if r.key not in outcomes]
            if not left:
                return outcomes
            member = await self._pools.pick(near) if pooled else None
            slot: Slot | None = None
            if member is None and bindable is not None and dispatch is not None:
                slot = await dispatch.slot(bindable, [r.key for r in left])
                outcomes.update((r.key, Finished(error=CANCELED)) for r in left if r.key in self._canceled)
                left = [r for r in left if r.key not in outcomes]
                if not left:  # canceled while it waited for room
                    if slot is not None:
                        dispatch.give_back(slot)
                    return outcomes
            remote = self._options(records[0].task_name, near or (slot.node if slot is not None else None))
            # The settings go by value (2 KB, pickled in ~12 us): no worker blocks to ask for
            # them, and none fetches them from the object store, which an ObjectRef argument
            # costs every task (~0.6 ms of a blocking create's latency, docs/benchmarks.md).
            if member is None:
                ref = remote.remote(left, attempt, self._settings, self._shard)
            else:
                ref = member.execute.remote(left, attempt, self._settings, self._shard)
                self._pooled[ref] = member
                self._pools.given(member, 1)
            self._running.update((r.key, ref) for r in left)
            try:
                ended = await ref
                outcomes.update(zip((r.key for r in left), ended))
                self._durations.note(left[0].task_name, sum(f.seconds for f in ended) / len(ended))
                return outcomes
            except (rex.TaskCancelledError, *RETRYABLE) as exc:
                if member is not None and isinstance(exc, rex.RayActorError | rex.ActorUnavailableError):
                    self._pools.forget(member)
                outcomes.update((r.key, Finished(error=CANCELED)) for r in left if r.key in self._canceled)
                if isinstance(exc, rex.TaskCancelledError) and len(outcomes) < len(records):
                    raise
                last = exc
                log.warning(
                    "tasks %s: attempt %d of %d lost its worker: %s",
                    [r.key for r in left],
                    attempt,
                    attempts,
                    type(exc).__name__,
                )
            finally:
                if member is not None:
                    self._pooled.pop(ref, None)
                    self._pools.given(member, -1)
                if slot is not None and dispatch is not None:
                    dispatch.give_back(slot)
        reason = type(last).__name__ if last else "unknown failure"
        crashed = Finished(
            error=str(WorkerCrashedError(f"the worker running this task died on all {attempts} attempts ({reason})"))
        )
        for record in records:
            if record.key not in outcomes:
                # What the dead attempts stored belongs to no result: it would be orphaned.
                await local_storage(self._settings).discard.remote(record.account, record.key)
                outcomes[record.key] = crashed
        return outcomes

    def _ask(self, task_name: str) -> tuple[registry.Resources, float]:
        """A task type's resources, and the GPU share its Ray task asks for (dragon/placement.py)."""
        task_type = registry.get(task_name)
        res = task_type.resources if task_type is not None else registry.Resources()
        return res, res.gpu if res.gpu and self._gpus.ask() else 0.0

    def _bindable(self, task_name: str) -> float | None:
        """The CPUs of a task type's Ray task if the shard binds it to a node (not one that
        asks for a GPU: GPU nodes are Ray's to pick), else None."""
        res, gpu = self._ask(task_name)
        return None if gpu else res.cpus

    def _options(self, task_name: str, node: str | None = None) -> Any:
        """``execute`` with the resources of the task type (built once per kind of ask and
        node); on ``node`` (soft affinity: elsewhere only if it is gone or cannot hold the
        task), where a task's input was made (pipelines) or where the dispatch bound it."""
        res, gpu = self._ask(task_name)
        key = (res.cpus, gpu, res.memory_mb, node)
        remote = self._remotes.get(key)
        if remote is None:
            if len(self._remotes) >= REMOTES_KEPT:  # nodes come and go on an autoscaling cluster
                self._remotes.clear()
            options: dict[str, Any] = {"num_cpus": res.cpus}
            if gpu:
                options["num_gpus"] = gpu
            if res.memory_mb:
                options["memory"] = res.memory_mb * 1024 * 1024
            if node is not None:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
            remote = self._remotes[key] = execute.options(**options)
        return remote

    async def _end(self, key: str, outcome: Finished, *, retry: bool = True) -> None:
        """Commit a task's end. A worker's outcome is retried while the journal is down:
        it is never dropped, nor shown before it is durable; a cancel answers 503."""
        status = self._book.apply(key, outcome)
        if status is not None and outcome.node is not None and self._waits.watched(key):
            self._made_on[key] = outcome.node
        delay = 0.2
        while status is not None:
            try:
                await self._persist([], [status])
                return
            except Exception:
                if not retry:
                    self._book.revert(status)
                    raise UnavailableError() from None
                log.warning("the journal is unavailable; the end of task %s waits to be written", key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def report(self, key: str, change: Change) -> None:
        """``executing`` and progress from a worker (one-way: workers do not wait)."""
        status = self._book.apply(key, change)
        if status is not None:
            try:
                await self._persist([], [status])
            except Exception:  # a progress report is not worth a retry: the next one comes
                self._book.revert(status)
                log.warning("could not write a progress report of %s", key)

    async def cancel(self, account: str, keys: list[str]) -> dict[str, str]:
        """Cancel queued and running tasks of ``account``: key -> canceled | ended | unknown."""
        await self._load(keys)
        records = await self._db(self._journal.records, [k for k in keys if k not in self._records])
        outcome: dict[str, str] = {}
        for key in dict.fromkeys(keys):
            record = self._records.get(key) or records.get(key)
            if record is None or record.account != account:
                outcome[key] = "unknown"
                continue
            queued = True  # nothing of it runs: its end is counted here
            if self._waits.drop(key):  # it waited for others' outputs
                self._records.pop(key, None)
                self._scheduler.unreserve(account, 1)
            elif self._scheduler.cancel(account, key):
                self._records.pop(key, None)
                self._near.pop(key, None)
            else:
                queued = False
                self._canceled.add(key)
            latest = self._book.latest(key)
            outcome[key] = "ended" if latest is None or latest.ended else "canceled"
            try:
                await self._end(key, Finished(error=CANCELED), retry=False)
            except UnavailableError:
                if queued:  # out of the queue already: its end is written once the journal is back
                    asyncio.ensure_future(self._end(key, Finished(error=CANCELED)))
                raise
            if queued:  # a running task's end is counted when its worker returns
                metrics.task_ended(record.task_name, self._book.latest(key))
            ref = self._running.get(key)
            if ref is not None and self._all_canceled(ref):  # a group of tiny tasks runs on for the others
                ray.cancel(ref)  # KeyboardInterrupt in the task: its cleanup runs
                asyncio.ensure_future(self._force_cancel(key, ref))
        self._drop_canceled()
        return outcome

    def _drop_canceled(self) -> None:
        """Started tasks still waiting for room (dragon/actors/dispatch.py) that are all
        canceled stop waiting."""
        if self._dispatch is not None and self._dispatch.held:
            self._dispatch.drop(lambda keys: all(key in self._canceled for key in keys))

    def _all_canceled(self, ref: ray.ObjectRef) -> bool:
        return all(key in self._canceled for key, running in self._running.items() if running is ref)

    async def _force_cancel(self, key: str, ref: ray.ObjectRef) -> None:
        """Work that ignores the interrupt (native encoders) has its worker killed."""
        await asyncio.sleep(CANCEL_GRACE)
        if self._running.get(key) is ref:
            member = self._pooled.get(ref)
            if member is None:
                ray.cancel(ref, force=True)
            else:  # an actor's running task cannot be killed alone: the member restarts
                ray.kill(member, no_restart=False)
                self._pools.forget(member)

    # pipelines: tasks that wait for the outputs of others (dragon/pipelines.py)

    async def _wait(self, record: TaskRecord) -> None:
        """Queue ``record`` until every task it uses has ended. A used task of this shard
        is seen ending when its end is published here; one of another shard is followed
        by a long poll on that shard (one per used key, however many wait for it)."""
        self._records[record.key] = record
        used = pipelines.needed(record)
        self._waits.add(record, used)
        for key in used:
            owner = shard_of(key, self._shards)
            if owner != self._shard:
                if key not in self._watching:
                    self._watching[key] = asyncio.ensure_future(self._watch(key, owner))
                continue
            await self._load([key])
            [found] = self._book.found([key])  # published: an end not yet committed comes by the hook
            if found is None and self._book.latest(key) is None:
                self._used_ended(key, _unknown(key), None)
            elif found is not None and found[1]["status"] in ENDED:
                self._used_ended(key, found[1], None)

    async def _watch(self, key: str, owner: int) -> None:
        """Long polls on the shard that owns ``key`` until it has ended; that shard
        restarting only delays the answer."""
        delay = 0.5
        try:
            while self._waits.watched(key):
                try:
                    [found] = await self._peer(owner).wait_ended.remote([key], WATCH_POLL)
                except Exception as exc:
                    log.warning("waiting for task %s on shard %d: %s", key, owner, type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 10.0)
                    continue
                status = _unknown(key) if found is None else found[1]
                if status["status"] in ENDED:
                    self._used_ended(key, status, None)
                    return
        finally:
            self._watching.pop(key, None)

    def _used_ended(self, key: str, status: dict[str, Any], node: str | None) -> None:
        for waiter in self._waits.ended(key, status, node):
            asyncio.ensure_future(self._resolved(waiter.record, waiter.ended, waiter.near))

    async def _resolved(self, record: TaskRecord, ended: dict[str, dict[str, Any]], near: str | None) -> None:
        """Every task ``record`` uses has ended: it starts with their outputs as inputs, or
        ends in a DependencyError without running."""
        outcome = pipelines.resolve(record, ended)
        if isinstance(outcome, str):
            self._records.pop(record.key, None)
            self._scheduler.unreserve(record.account, 1)
            await self._end(record.key, Finished(error=outcome))
            return
        self._records[record.key] = outcome
        if near is not None:
            self._near[record.key] = near
        self._scheduler.enqueue(record.account, [outcome], 1)

    # reading statuses

    async def get(self, keys: list[str]) -> list[Found]:
        await self._load(keys)
        return self._book.found(keys)

    async def wait_ended(self, keys: list[str], timeout: float) -> list[Found]:
        """Wait until every key has ended, or ``timeout``; then answer as :meth:`get`."""
        await self._load(keys)
        pending = self._book.unended(keys)
        if pending:
            await self._book.wait(pending, until_all_ended=True, timeout=timeout)
        return self._book.found(keys)

    async def changes(self, cursors: dict[str, int], timeout: float) -> list[tuple[str, int, dict[str, Any]]]:
        """Changes newer than ``cursors`` (key -> last version seen), waiting up to ``timeout``."""
        await self._load(list(cursors))
        found = self._book.newer(cursors)
        if not found and timeout > 0:
            await self._book.wait(cursors, until_all_ended=False, timeout=timeout)
            found = self._book.newer(cursors)
        return found

    async def details(self, keys: list[str]) -> dict[str, Details]:
        """Definitions, attempt counts, callback deliveries and warnings, for ``details=true``."""
        records = await self._db(self._journal.records, keys)
        deliveries = await self._db(self._journal.deliveries, keys)
        await self._load(list(records))
        found = {}
        for key, record in records.items():
            latest = self._book.latest(key)
            delivery = deliveries.get(key)
            found[key] = Details(
                record,
                latest.attempts if latest else 0,
                list(latest.warnings) if latest else [],
                {"id": delivery.id, "url": delivery.url, "state": delivery.state, "attempts": delivery.attempts}
                if delivery
                else None,
            )
        return found

    async def history(self, query: History) -> list[tuple[str, str, str]]:
        return await self._db(self._journal.history, query)

    async def unfinished_counts(self, account: str) -> dict[str, int]:
        return await self._db(self._journal.unfinished_counts, account)

    # the ledger of the accounts whose home this shard is (dragon/actors/ledger.py)

    async def acquire(
        self, account: str, max_running: int, max_open: int, asker: Holding, open_needed: int, force: bool
    ) -> tuple[int, int]:
        return await self._ledger.acquire(account, max_running, max_open, asker, open_needed, force=force)

    def release(self, account: str, giver: Holding, wants: int | None) -> None:
        self._ledger.release(account, giver, wants)

    def give_back_unused(self, account: str, run: bool, open: bool) -> Holding:
        return self._scheduler.give_back_unused(account, run=run, open=open)

    def set_target(self, account: str, target: int | None) -> Holding:
        return self._scheduler.set_target(account, target)

    def granted(self, account: str, run: int, more: bool) -> None:
        self._scheduler.granted(account, run, more=more)

    def holding(self, account: str) -> Holding:
        return self._scheduler.holding(account)

    # internals

    async def _db(self, method: Callable[..., T], *args: Any) -> T:
        """A journal call on the journal's thread: the event loop never waits on the
        database. The database down (stopped, unreachable, its disk full) is a refusal
        the API answers with 503: retry later."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._io, method, *args)
        except Exception as exc:
            log.warning("journal call %s failed: %s", getattr(method, "__name__", method), type(exc).__name__)
            raise UnavailableError("service", "the journal is unavailable, retry later") from None

    async def _load(self, keys: list[str]) -> None:
        """Bring journal statuses into memory (after a restart, or evicted ended ones)."""
        missing = self._book.missing(keys)
        if missing:
            self._book.load((await self._db(self._journal.statuses, missing)).values())

    async def _persist(self, created: list[tuple[TaskRecord, TaskStatus]], updated: list[TaskStatus]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(created, updated, done))
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())
        await done

    async def _flush(self) -> None:
        """Group commit: everything queued while the previous write ran goes in one transaction."""
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                created = [item for w in batch for item in w.created]
                updated = [status for w in batch for status in w.updated]
                try:
                    await self._db(self._journal.write, created, updated)
                except Exception as exc:  # the journal is down: callers see it, nothing is published
                    log.warning("journal write failed: %s", type(exc).__name__)
                    for w in batch:
                        if not w.done.done():
                            w.done.set_exception(exc)
                    continue
                callbacks = False
                for status in [s for _, s in created] + updated:
                    self._book.publish(status)
                    callbacks = callbacks or status.callback_url() is not None
                    if status.ended and self._waits.watched(status.key):
                        self._used_ended(status.key, status.public(), self._made_on.pop(status.key, None))
                if callbacks:
                    self._deliverer.wake()
                for w in batch:
                    if not w.done.done():
                        w.done.set_result(None)
        finally:
            self._flushing = False

    async def _recover_once(self) -> None:
        """Wait for recovery; one that failed (the journal was down) is tried again."""
        if self._recovered.done() and self._recovered.exception():
            self._recovered = asyncio.ensure_future(self._recover())
        await asyncio.shield(self._recovered)

    async def _recover(self) -> None:
        """Queue again this shard's tasks the journal has not seen end. They were accepted
        before: they count against their account's limits without asking (the next
        create of the account settles the open slots with its home)."""
        self._deliverer.start()
        if self._dispatch is not None:
            self._dispatch.update(await asyncio.to_thread(task_nodes))
        if self._ticking is None:
            self._ticking = asyncio.ensure_future(self._tick())
        unfinished = await self._db(self._journal.unfinished, self._shard, self._shards)
        self._book.load(status for _, status in unfinished)
        accounts: dict[str, list[TaskRecord]] = {}
        for record, _ in unfinished:
            accounts.setdefault(record.account, []).append(record)
            self._records[record.key] = record
            self._resumed.add(record.key)
        for name, records in accounts.items():
            account = await self._db(self._journal.account, name)
            s = self._settings
            self._scheduler.limits(
                name,
                account.max_concurrent_tasks if account else s.default_max_concurrent_tasks,
                account.max_queued_tasks if account else s.default_max_queued_tasks,
            )
            waiting = [r for r in records if r.uses]  # what they use is looked up again: a finished step stays finished
            self._scheduler.enqueue(name, [r for r in records if not r.uses], 0)
            self._scheduler.reserve(name, len(waiting))
            for record in waiting:
                await self._wait(record)
        if unfinished:
            log.warning("shard %d re-queued %d tasks that had not ended", self._shard, len(unfinished))

    async def _tick(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK)
            ticks += 1
            self._scheduler.ask_again()
            self._occupancy.update(self._records.values(), self._running)
            if self._dispatch is not None and ticks % NODES_EVERY == 0:
                try:
                    self._dispatch.update(await asyncio.to_thread(task_nodes))
                except Exception as exc:  # the GCS restarting: the nodes known stay
                    log.warning("could not list the cluster's nodes: %s", type(exc).__name__)

    def _peer(self, shard: int) -> ray.actor.ActorHandle:
        handle = self._peers.get(shard)
        if handle is None:
            handle = self._peers[shard] = ray.get_actor(actor_name(shard), namespace=self._settings.ray_namespace)
        return handle

    def _home(self, account: str) -> Home:
        home = home_of(account, self._shards)
        return self._local_home if home == self._shard else _RemoteHome(self._peer(home))


class _LocalHome:
    """This shard is the account's home: its ledger, called in the event loop's next turn
    as a remote home would be."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    async def acquire(
        self,
        account: str,
        max_running: int,
        max_open: int,
        asker: Holding,
        open_needed: int = 0,
        *,
        force: bool = False,
    ) -> tuple[int, int]:
        return await self._ledger.acquire(account, max_running, max_open, asker, open_needed, force=force)

    def release(self, account: str, giver: Holding, wants: int | None = None) -> None:
        asyncio.get_running_loop().call_soon(self._ledger.release, account, giver, wants)


class _RemoteHome:
    def __init__(self, handle: ray.actor.ActorHandle):
        self._handle = handle

    async def acquire(
        self,
        account: str,
        max_running: int,
        max_open: int,
        asker: Holding,
        open_needed: int = 0,
        *,
        force: bool = False,
    ) -> tuple[int, int]:
        try:
            return await self._handle.acquire.remote(account, max_running, max_open, asker, open_needed, force)
        except rex.RayTaskError as exc:
            if isinstance(exc.cause, LimitReached):
                raise LimitReached(account) from None
            raise

    def release(self, account: str, giver: Holding, wants: int | None = None) -> None:
        self._handle.release.remote(account, giver, wants)


class _Peers:
    """How this shard, as a home, reaches the shards that lease from it (itself included)."""

    def __init__(self, shard: TaskShard):
        self._shard = shard

    def _local(self, shard: int) -> bool:
        return shard == self._shard._shard

    async def give_back_unused(self, shard: int, account: str, *, run: bool, open: bool) -> Holding:
        if self._local(shard):
            return self._shard._scheduler.give_back_unused(account, run=run, open=open)
        return await self._shard._peer(shard).give_back_unused.remote(account, run, open)

    async def set_target(self, shard: int, account: str, target: int | None) -> Holding:
        if self._local(shard):
            return self._shard._scheduler.set_target(account, target)
        return await self._shard._peer(shard).set_target.remote(account, target)

    def granted(self, shard: int, account: str, run: int, *, more: bool) -> None:
        if self._local(shard):
            asyncio.get_running_loop().call_soon(lambda: self._shard._scheduler.granted(account, run, more=more))
        else:
            self._shard._peer(shard).granted.remote(account, run, more)

    async def holding(self, shard: int, account: str) -> Holding:
        if self._local(shard):
            return self._shard._scheduler.holding(account)
        return await self._shard._peer(shard).holding.remote(account)


def _unknown(key: str) -> dict[str, Any]:
    """The end of a used task that is nowhere (its record gone): its users cannot run."""
    return {"key": key, "status": "error", "error": f"UnknownTaskError: {UnknownTaskError(key).description}"}
