"""A shard's tasks that wait for the tasks whose outputs they use (dragon/pipelines.py).

No Ray: the shard tells it what it learns (a used task ended, here or on another shard)
and starts or ends the waiters it hands back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dragon.status import TaskRecord


@dataclass
class Waiter:
    record: TaskRecord
    unended: set[str]
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)  # used key -> its public status
    near: str | None = None  # the node where an input was made


class Waits:
    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}
        self._dependents: dict[str, set[str]] = {}  # used key -> keys waiting for it

    def __contains__(self, key: str) -> bool:
        return key in self._waiters

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, record: TaskRecord, used: list[str]) -> None:
        self._waiters[record.key] = Waiter(record, set(used))
        for key in used:
            self._dependents.setdefault(key, set()).add(record.key)

    def watched(self, key: str) -> bool:
        """Whether a waiter here uses task ``key``."""
        return key in self._dependents

    def ended(self, key: str, status: dict[str, Any], node: str | None) -> list[Waiter]:
        """Task ``key`` ended: the waiters that now have every input's end (each once)."""
        done = []
        for waiting in sorted(self._dependents.pop(key, ())):
            waiter = self._waiters.get(waiting)
            if waiter is None or key not in waiter.unended:
                continue
            waiter.unended.discard(key)
            waiter.ended[key] = status
            waiter.near = waiter.near or node
            if not waiter.unended:
                done.append(self._waiters.pop(waiting))
        return done

    def drop(self, key: str) -> bool:
        """Stop waiting for ``key`` (canceled); False if it was not waiting."""
        waiter = self._waiters.pop(key, None)
        if waiter is None:
            return False
        for used in waiter.unended:
            dependents = self._dependents.get(used)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[used]
        return True
