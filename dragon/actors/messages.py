"""The messages between the service's processes: named, frozen dataclasses, small and
picklable, so what crosses a process boundary is read in one place.

Status changes (``Started``, ``Reported``, ``Finished``) carry their own ``apply``: the
shard computes the next status from the newest one, and a change that no longer applies
(the task has ended) returns None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dragon.accounts import Account
from dragon.status import TaskRecord, TaskStatus, now_iso


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
    seconds: float = 0.0  # how long the task function ran (the shard groups tiny tasks)
    node: str | None = None  # the Ray node it ran on: tasks that use its outputs go there if they can

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


@dataclass(frozen=True)
class NewTask:
    """A task of a create request: its record, and its validation error (None when valid).
    An invalid task is created already ended in error, as the spec shows."""

    record: TaskRecord
    error: Any = None


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` and the digest of the request's tasks it was sent with."""

    key: str
    body_hash: str


@dataclass(frozen=True)
class Submission:
    """One create request, handed whole to the shard that will own its tasks.

    ``wait`` > 0 is ``block=true``: the shard answers once every task has ended or
    ``wait`` seconds have passed, which saves the API a second call.
    """

    account: Account
    tasks: list[NewTask]
    idempotency: Idempotency | None = None
    wait: float = 0.0


@dataclass(frozen=True)
class Details:
    """What ``details=true`` adds to a status: the definition, attempts, callback, warnings."""

    record: TaskRecord
    attempts: int
    warnings: list[str]
    delivery: dict[str, Any] | None


@dataclass(frozen=True)
class Holding:
    """The slots of one account a shard holds from the account's home shard: ``run``
    (tasks running at once) and ``open`` (tasks queued or running), and which life of
    the shard holds them (a restarted shard holds nothing)."""

    shard: int
    incarnation: str
    run: int = 0
    open: int = 0
