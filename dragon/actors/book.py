"""The statuses a shard holds in memory, and the long polls waiting on them.

No Ray and no journal here (the shard writes the journal), so the rules are unit-tested
on their own: a change is computed on the newest state (``latest``) but shown only once
``publish`` says the journal holds it; every published change wakes the long polls of
its key; a live task keeps its last ``HISTORY`` changes so a stream sees each transition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from dragon.actors.messages import Change
from dragon.status import TaskStatus

HISTORY = 64  # changes kept per live task
ENDED_CACHE = 50_000  # ended statuses kept in memory; older ones are read from the journal

Found = tuple[int, dict[str, Any]] | None  # (version, public status) of a key, None if unknown


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


class StatusBook:
    def __init__(self) -> None:
        self._live: dict[str, _Entry] = {}
        self._ended: OrderedDict[str, _Entry] = OrderedDict()
        self._waiters: dict[str, set[_Waiter]] = {}
        # Versions start from the clock so they keep growing across restarts.
        self._version = time.time_ns() // 1000

    # changes

    def add(self, status: TaskStatus) -> TaskStatus:
        """A new task's first status, not yet published."""
        status.version = self._next_version()
        self._live[status.key] = _Entry(status, None)
        return status

    def apply(self, key: str, change: Change) -> TaskStatus | None:
        """The task's next status after ``change`` (not yet published), or None when the
        key is not held here or the change no longer applies."""
        entry = self._lookup(key)
        if entry is None:
            return None
        new = change.apply(dataclasses.replace(entry.latest, events=dict(entry.latest.events)))
        if new is None:
            return None
        new.version = self._next_version()
        entry.latest = new
        return new

    def forget(self, keys: Iterable[str]) -> None:
        """New tasks whose creation could not be written: they never existed."""
        for key in keys:
            entry = self._live.get(key)
            if entry is not None and entry.published is None:
                del self._live[key]

    def revert(self, status: TaskStatus) -> None:
        """``status`` could not be written: unless a later change built on it, forget it,
        so the next change applies to what the journal holds."""
        entry = self._lookup(status.key)
        if entry is not None and entry.latest is status and entry.published is not None:
            entry.latest = entry.published

    def publish(self, status: TaskStatus) -> None:
        """The journal holds ``status``: show it, and wake whoever waits on its key."""
        entry = self._live.get(status.key) or self._ended.get(status.key) or _Entry(status, None)
        if entry.published is not None and entry.published.version >= status.version:
            return
        entry.published = status
        entry.history.append((status.version, status.public()))
        self._remember(entry)
        waiting = self._waiters.get(status.key)
        if waiting:
            for waiter in [w for w in waiting if w.wake(status.key, status.ended)]:
                waiting.discard(waiter)

    def load(self, statuses: Iterable[TaskStatus]) -> None:
        """Statuses read back from the journal (after a restart, or evicted ended ones)."""
        for status in statuses:
            if self._lookup(status.key) is None:
                self._remember(_Entry(status, status))

    # reads

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys not in memory: the caller loads them from the journal."""
        return [k for k in keys if k not in self._live and k not in self._ended]

    def latest(self, key: str) -> TaskStatus | None:
        entry = self._lookup(key)
        return entry.latest if entry else None

    def found(self, keys: list[str]) -> list[Found]:
        out: list[Found] = []
        for key in keys:
            entry = self._lookup(key)
            published = entry.published if entry else None
            out.append((published.version, published.public()) if published else None)
        return out

    def newer(self, cursors: dict[str, int]) -> list[tuple[str, int, dict[str, Any]]]:
        """Every published change newer than ``cursors`` (key -> last version seen), in order."""
        found = []
        for key, seen in cursors.items():
            entry = self._lookup(key)
            if entry is not None:
                found += [(key, version, doc) for version, doc in entry.history if version > seen]
        found.sort(key=lambda change: change[1])
        return found

    def unended(self, keys: Iterable[str]) -> list[str]:
        """The known keys whose published status has not ended."""
        return [k for k in keys if (e := self._lookup(k)) and (not e.published or not e.published.ended)]

    # long polls

    async def wait(self, keys: Iterable[str], *, until_all_ended: bool, timeout: float) -> None:
        """Until a change of any of ``keys`` is published (or all have ended), or ``timeout``."""
        waiter = _Waiter(keys, until_all_ended)
        for key in waiter.pending:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout)
        except TimeoutError:
            pass
        finally:
            for key in waiter.keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[key]

    @property
    def waiting(self) -> int:
        """Keys that long polls wait on now."""
        return len(self._waiters)

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
