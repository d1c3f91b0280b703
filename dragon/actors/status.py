"""The status actor: the single source of truth for task statuses.

One async actor per shard (``hash(key) % shards``). Every change is computed on the
newest state, written to the journal by a group-commit flusher, and only then published:
readers, blocking waits and streams never see a status the journal could lose.

Streams and waits are long polls: a caller passes the versions it has seen and is woken
by a per-key future when something newer is published. Nothing here polls in a loop.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

import ray

from dragon.config import Settings
from dragon.actors.callbacks import ACTOR_NAME as CALLBACKS_ACTOR
from dragon.journal import Delivery, open_journal
from dragon.status import TaskRecord, TaskStatus, now_iso

log = logging.getLogger(__name__)

HISTORY = 64  # changes kept per live task, so a stream sees every transition
ENDED_CACHE = 50_000  # ended statuses kept in memory; older ones are read from the journal

def shard_of(key: str, shards: int) -> int:
    if shards == 1:
        return 0
    return int.from_bytes(base64.b32decode(key + "======")[:8], "big") % shards


def actor_name(shard: int) -> str:
    return f"dragon-status-{shard}"


# Changes: small picklable values whose ``apply`` computes the next status from the
# newest one, or returns None when the change no longer applies (the task has ended).


@dataclass(frozen=True)
class Started:
    attempt: int
    at: str

    def apply(self, s: TaskStatus) -> TaskStatus | None:
        if s.ended:
            return None
        s.status = "executing"
        s.events["started"] = self.at
        s.attempts = self.attempt
        return s


@dataclass(frozen=True)
class Reported:
    progress: Any
    partial_result: dict[str, Any] | None = None

    def apply(self, s: TaskStatus) -> TaskStatus | None:
        if s.ended:
            return None
        s.status = "executing"
        s.progress = self.progress
        if self.partial_result is not None:
            s.result = {**(s.result or {}), **self.partial_result}
        return s


@dataclass(frozen=True)
class Finished:
    result: Any = None
    error: Any = None
    started: Started | None = None  # for tasks that ended before "executing" was sent
    warnings: list[str] = field(default_factory=list)

    def apply(self, s: TaskStatus) -> TaskStatus | None:
        if s.ended:
            return None
        if self.started is not None:
            self.started.apply(s)
        s.status = "error" if self.error is not None else "success"
        s.events["completed"] = now_iso()
        s.progress = None
        s.result = self.result if self.error is None else None
        s.error = self.error
        s.warnings = list(self.warnings)
        return s


Change = Started | Reported | Finished


def _copy(s: TaskStatus) -> TaskStatus:
    """Changes only replace values or the events mapping: a shallow copy is enough."""
    return dataclasses.replace(s, events=dict(s.events))


class _Waiter:
    """A long poll: woken by any change of its keys, or once all of them have ended.

    Counting down ended keys keeps a wait on N tasks O(N) overall, not O(N) per change.
    """

    __slots__ = ("keys", "pending", "until_all_ended", "future")

    def __init__(self, keys: Iterable[str], until_all_ended: bool):
        self.keys = list(keys)
        self.pending = set(self.keys)
        self.until_all_ended = until_all_ended
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()

    def wake(self, key: str, ended: bool) -> bool:
        """Note a published change; True when this waiter is done with the key."""
        if self.until_all_ended:
            if not ended:
                return False
            self.pending.discard(key)
            if self.pending:
                return True
        if not self.future.done():
            self.future.set_result(None)
        return True


class _Entry:
    __slots__ = ("latest", "published", "history")

    def __init__(self, latest: TaskStatus, published: TaskStatus | None):
        self.latest = latest
        self.published = published
        self.history: deque[tuple[int, dict[str, Any]]] = deque(maxlen=HISTORY)
        if published is not None:
            self.history.append((published.version, published.public()))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=100_000)
class StatusShard:
    def __init__(self, settings: Settings, shard: int):
        self._shard = shard
        self._namespace = settings.ray_namespace
        self._callbacks: ray.actor.ActorHandle | None = None
        self._journal = open_journal(settings)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._live: dict[str, _Entry] = {}
        self._ended: OrderedDict[str, _Entry] = OrderedDict()
        self._waiters: dict[str, set[_Waiter]] = {}
        # Versions start from the clock so they keep growing across actor restarts.
        self._version = time.time_ns() // 1000
        self._queue: list[tuple[list, list, asyncio.Future]] = []
        self._flushing = False

    async def ping(self) -> int:
        return self._shard

    # writes

    async def create(self, items: list[tuple[TaskRecord, TaskStatus]]) -> list[dict[str, Any]]:
        for _, status in items:
            status.version = self._next_version()
            self._live[status.key] = _Entry(status, None)
        await self._persist(list(items), [])
        return [status.public() for _, status in items]

    async def update(self, key: str, change: Change) -> dict[str, Any] | None:
        """Apply a change; returns the new public status, or None if nothing changed."""
        entry = await self._entry(key)
        if entry is None:
            return None
        new = change.apply(_copy(entry.latest))
        if new is None:
            return None
        new.version = self._next_version()
        entry.latest = new
        await self._persist([], [new])
        return new.public()

    # reads

    async def get(self, keys: list[str]) -> list[tuple[int, dict[str, Any]] | None]:
        await self._load([k for k in keys if k not in self._live and k not in self._ended])
        out: list[tuple[int, dict[str, Any]] | None] = []
        for key in keys:
            entry = self._lookup(key)
            published = entry.published if entry else None
            out.append((published.version, published.public()) if published else None)
        return out

    async def changes(self, cursors: dict[str, int], timeout: float) -> list[tuple[str, int, dict[str, Any]]]:
        """Changes newer than ``cursors`` (key -> last version seen), waiting up to ``timeout``."""
        await self._load([k for k in cursors if self._lookup(k) is None])
        found = self._newer(cursors)
        if not found and timeout > 0:
            await self._wait(_Waiter(cursors, until_all_ended=False), timeout)
            found = self._newer(cursors)
        return found

    async def wait_ended(self, keys: list[str], timeout: float) -> list[tuple[int, dict[str, Any]] | None]:
        """Wait until every key has ended, or ``timeout``; then answer as :meth:`get`."""
        await self._load([k for k in keys if self._lookup(k) is None])
        pending = [k for k in keys if (e := self._lookup(k)) and (not e.published or not e.published.ended)]
        if pending:
            await self._wait(_Waiter(pending, until_all_ended=True), timeout)
        return await self.get(keys)

    async def details(self, keys: list[str]) -> dict[str, tuple[TaskRecord, int, Delivery | None, list[str]]]:
        """Definitions, attempt counts, callback deliveries and warnings, for ``details=true``."""
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(self._io, self._journal.records, keys)
        deliveries = await loop.run_in_executor(self._io, self._journal.deliveries, keys)
        await self._load([k for k in records if self._lookup(k) is None])
        return {
            k: (r, e.latest.attempts, deliveries.get(k), e.latest.warnings) if (e := self._lookup(k)) else (r, 0, deliveries.get(k), [])
            for k, r in records.items()
        }

    async def unfinished(self) -> list[tuple[TaskRecord, TaskStatus]]:
        return await asyncio.get_running_loop().run_in_executor(self._io, self._journal.unfinished)

    # internals

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _lookup(self, key: str) -> _Entry | None:
        entry = self._live.get(key)
        if entry is None:
            entry = self._ended.get(key)
            if entry is not None:
                self._ended.move_to_end(key)
        return entry

    async def _entry(self, key: str) -> _Entry | None:
        if self._lookup(key) is None:
            await self._load([key])
        return self._lookup(key)

    async def _load(self, keys: list[str]) -> None:
        """Bring journal statuses into memory (after a restart, or evicted ended ones)."""
        if not keys:
            return
        stored = await asyncio.get_running_loop().run_in_executor(self._io, self._journal.statuses, keys)
        for key, status in stored.items():
            if self._lookup(key) is None:
                self._remember(_Entry(status, status))

    def _remember(self, entry: _Entry) -> None:
        key = entry.latest.key
        if entry.published is not None and entry.published.ended and entry.latest is entry.published:
            self._live.pop(key, None)
            self._ended[key] = entry
            self._ended.move_to_end(key)
            while len(self._ended) > ENDED_CACHE:
                self._ended.popitem(last=False)
        else:
            self._live[key] = entry

    def _newer(self, cursors: dict[str, int]) -> list[tuple[str, int, dict[str, Any]]]:
        found = []
        for key, seen in cursors.items():
            entry = self._lookup(key)
            if entry is None:
                continue
            found += [(key, version, doc) for version, doc in entry.history if version > seen]
        found.sort(key=lambda change: change[1])
        return found

    async def _wait(self, waiter: _Waiter, timeout: float) -> None:
        for key in waiter.pending:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            for key in waiter.keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[key]

    async def _persist(self, created: list, updated: list[TaskStatus]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((created, updated, done))
        if not self._flushing:
            self._flushing = True
            asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        """Group commit: everything queued while the previous write ran goes in one transaction."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                created = [item for b in batch for item in b[0]]
                updated = [status for b in batch for status in b[1]]
                try:
                    await loop.run_in_executor(self._io, self._journal.write, created, updated)
                except Exception as exc:  # the journal is down: callers see it, nothing is published
                    log.exception("journal write failed")
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for _, status in created:
                    self._publish(status)
                for status in updated:
                    self._publish(status)
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._flushing = False

    def _wake_callbacks(self) -> None:
        """Its delivery row was committed with the status: have it sent now."""
        try:
            if self._callbacks is None:
                self._callbacks = ray.get_actor(CALLBACKS_ACTOR, namespace=self._namespace)
            self._callbacks.wake.remote()
        except Exception:  # the callback actor polls the journal anyway
            log.warning("could not wake the callback actor")

    def _publish(self, status: TaskStatus) -> None:
        entry = self._live.get(status.key) or self._ended.get(status.key)
        if entry is None:
            entry = _Entry(status, None)
        if entry.published is not None and entry.published.version >= status.version:
            return
        entry.published = status
        entry.history.append((status.version, status.public()))
        if status.callback_url():
            self._wake_callbacks()
        self._remember(entry)
        waiting = self._waiters.get(status.key)
        if waiting:
            for waiter in [w for w in waiting if w.wake(status.key, status.ended)]:
                waiting.discard(waiter)


class Statuses:
    """Caller-side view of the status shards: routes each key to its shard and keeps
    request order in every answer."""

    def __init__(self, shards: list[ray.actor.ActorHandle]):
        self.shards = shards

    @classmethod
    def lookup(cls, settings: Settings) -> Statuses:
        return cls(
            [ray.get_actor(actor_name(i), namespace=settings.ray_namespace) for i in range(settings.status_shards)]
        )

    def shard(self, key: str) -> ray.actor.ActorHandle:
        return self.shards[shard_of(key, len(self.shards))]

    def _split(self, keys: list[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(shard_of(key, len(self.shards)), []).append(key)
        return groups

    async def create(self, items: list[tuple[TaskRecord, TaskStatus]]) -> dict[str, dict[str, Any]]:
        groups: dict[int, list[tuple[TaskRecord, TaskStatus]]] = {}
        for item in items:
            groups.setdefault(shard_of(item[0].key, len(self.shards)), []).append(item)
        answers = await asyncio.gather(*(self.shards[i].create.remote(group) for i, group in groups.items()))
        return {doc["key"]: doc for docs in answers for doc in docs}

    def update(self, key: str, change: Change) -> ray.ObjectRef:
        return self.shard(key).update.remote(key, change)

    async def get(self, keys: list[str]) -> list[tuple[int, dict[str, Any]] | None]:
        return await self._per_key("get", keys)

    async def wait_ended(self, keys: list[str], timeout: float) -> list[tuple[int, dict[str, Any]] | None]:
        return await self._per_key("wait_ended", keys, timeout)

    async def _per_key(self, method: str, keys: list[str], *args: Any) -> list[Any]:
        """Call ``method`` on each shard with its keys; answers come back in ``keys`` order."""
        groups = self._split(list(dict.fromkeys(keys)))
        answers = await asyncio.gather(
            *(getattr(self.shards[i], method).remote(ks, *args) for i, ks in groups.items())
        )
        found = {k: a for ks, ans in zip(groups.values(), answers) for k, a in zip(ks, ans)}
        return [found[k] for k in keys]

    async def changes(self, cursors: dict[str, int], timeout: float) -> list[tuple[str, int, dict[str, Any]]]:
        """Long poll on every shard holding one of the keys; returns when any has news."""
        groups = self._split(list(cursors))
        refs = [self.shards[i].changes.remote({k: cursors[k] for k in ks}, timeout) for i, ks in groups.items()]
        if len(refs) == 1:
            return await _cancel_on_exit(refs[0])
        pending = {asyncio.ensure_future(_cancel_on_exit(ref)) for ref in refs}
        try:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()
        return sorted((c for task in done for c in task.result()), key=lambda c: c[1])

    async def details(self, keys: list[str]) -> dict[str, tuple[TaskRecord, int, Delivery | None, list[str]]]:
        groups = self._split(keys)
        answers = await asyncio.gather(*(self.shards[i].details.remote(ks) for i, ks in groups.items()))
        return {k: v for answer in answers for k, v in answer.items()}

    async def unfinished(self) -> list[tuple[TaskRecord, TaskStatus]]:
        # Every shard shares the journal; asking one is enough and keeps the order.
        return await self.shards[0].unfinished.remote()


async def _cancel_on_exit(ref: ray.ObjectRef) -> Any:
    """Await an actor call; if the caller goes away (client disconnected), cancel it too."""
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise
