"""The durable journal: every task definition and status transition, and the accounts.

:class:`Journal` is the interface the rest of the service uses; SQLite in the data
directory is the embedded default, PostgreSQL (``DRAGON_JOURNAL_DSN``) the cluster store
with the same semantics. See docs/journal.md.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dragon.accounts import Account
from dragon.config import Settings
from dragon.status import TaskRecord, TaskStatus


@dataclass(frozen=True)
class Lease:
    """Who owns the queue of a journal: the one head whose shards may run its tasks.

    ``token`` is the fencing token: it grows each time another head takes the lease, and
    a journal fenced with an older one refuses the writes that matter (docs/journal.md).
    """

    holder: str
    token: int
    expires_in: float  # seconds left, by the journal's clock; <= 0 once it has lapsed
    acquired: bool  # whether the asker holds it now


class FencedError(RuntimeError):
    """A write by a head that no longer holds the journal's lease: another head took it."""


def take_lease(current: tuple[str, int, float], holder: str, now: float, ttl: float) -> tuple[bool, Lease]:
    """The lease after ``holder`` asks for it at ``now``, given the stored (holder, token,
    expires_at): a lease that is free, lapsed or already the asker's is taken (a new holder
    gets the next token); a live lease of another head is not. Returns (changed, lease)."""
    held_by, token, expires_at = current
    if held_by and held_by != holder and expires_at > now:
        return False, Lease(held_by, token, expires_at - now, acquired=False)
    if held_by != holder:
        token += 1
    return True, Lease(holder, token, ttl, acquired=True)


@dataclass
class Delivery:
    """A callback to POST: the final status of ``task_key`` to ``url``."""

    id: str
    task_key: str
    account: str
    url: str
    state: str = "pending"  # pending | delivered | failed
    attempts: list[dict[str, Any]] = field(default_factory=list)
    first_at: float = 0.0
    next_at: float = 0.0


@dataclass(frozen=True)
class History:
    """Which of an account's tasks ``Journal.history`` reads: its filters (ISO 8601 UTC
    times of creation, as the journal stores them), and the page's place: the tasks
    created before ``before`` (created_at, key), ``limit`` of them."""

    account: str
    states: tuple[str, ...] = ()
    task_name: str | None = None
    since: str | None = None
    until: str | None = None
    before: tuple[str, str] | None = None
    limit: int = 100

    def where(self, mark: str) -> tuple[str, list[Any]]:
        """The SQL condition and its values, with ``mark`` as the placeholder (``?``, ``%s``).
        Every condition is a range or equality on the columns of the history indexes
        (account, created_at, key) and (account, state, created_at, key)."""
        terms, values = [f"account = {mark}"], [self.account]
        if self.states:
            terms.append(f"state IN ({', '.join(mark for _ in self.states)})")
            values += self.states
        if self.task_name is not None:
            terms.append(f"task_name = {mark}")
            values.append(self.task_name)
        if self.since is not None:
            terms.append(f"created_at >= {mark}")
            values.append(self.since)
        if self.until is not None:
            terms.append(f"created_at < {mark}")
            values.append(self.until)
        if self.before is not None:
            terms.append(f"(created_at, key) < ({mark}, {mark})")
            values += self.before
        return " AND ".join(terms), values


class Journal(ABC):
    _fence: int | None = None

    def fence(self, token: int) -> None:
        """From now on, the writes of a head (task changes, idempotency claims, deliveries)
        commit only while the lease's token is still ``token``; else FencedError."""
        self._fence = token

    def _fence_error(self, token: int, holder: str) -> FencedError:
        return FencedError(
            f"FencedError: head {holder} took the journal's lease (token {token}, this head's is "
            f"{self._fence}): this head may no longer write"
        )

    @abstractmethod
    def acquire_lease(self, holder: str, ttl: float) -> Lease:
        """Take the lease for ``ttl`` seconds if no other head holds a live one (atomically)."""

    @abstractmethod
    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        """Extend the lease ``holder`` holds with ``token``; False once another head took it."""

    @abstractmethod
    def release_lease(self, holder: str, token: int) -> None:
        """Let the lease lapse now (a clean stop), so that the next head need not wait."""

    @abstractmethod
    def write(self, created: Iterable[tuple[TaskRecord, TaskStatus]], updated: Iterable[TaskStatus]) -> None:
        """Persist new tasks and status changes in one durable transaction. An ended
        status with a callback URL adds its pending delivery in the same transaction,
        so a delivery exists exactly when its task has ended."""

    def statuses(self, keys: Iterable[str]) -> dict[str, TaskStatus]:
        """Stored statuses of the given keys; unknown keys are absent."""
        return {k: TaskStatus.from_json(json.loads(v)) for k, v in self._select("status", keys)}

    def records(self, keys: Iterable[str]) -> dict[str, TaskRecord]:
        """Stored definitions of the given keys; unknown keys are absent."""
        return {k: TaskRecord.from_json(json.loads(v)) for k, v in self._select("record", keys)}

    @abstractmethod
    def _select(self, column: str, keys: Iterable[str]) -> list[tuple[str, str]]:
        """(key, JSON text of ``column``) of the tasks among ``keys`` (``status`` or ``record``)."""

    @abstractmethod
    def unfinished(self, shard: int = 0, shards: int = 1) -> list[tuple[TaskRecord, TaskStatus]]:
        """Every task of ``shard`` (of ``shards``) not yet ended, oldest first: what a
        restarted shard must run again."""

    @abstractmethod
    def history(self, query: History) -> list[tuple[str, str, str]]:
        """(created_at, key, status JSON) of the tasks ``query`` selects, newest first."""

    @abstractmethod
    def unfinished_counts(self, account: str) -> dict[str, int]:
        """How many of the account's tasks are queued and executing, as published."""

    @abstractmethod
    def due_deliveries(self, now: float, limit: int, shard: int = 0, shards: int = 1) -> list[Delivery]:
        """Pending deliveries of ``shard``'s tasks whose next try is due, soonest first."""

    @abstractmethod
    def next_delivery_at(self, shard: int = 0, shards: int = 1) -> float | None: ...

    @abstractmethod
    def save_delivery(self, delivery: Delivery) -> None: ...

    @abstractmethod
    def deliveries(self, task_keys: Iterable[str]) -> dict[str, Delivery]: ...

    @abstractmethod
    def claim_idempotency(
        self, account: str, key: str, body_hash: str, task_keys: list[str], since: float, now: float
    ) -> tuple[str, list[str]] | None:
        """Atomically: the (body hash, task keys) stored for this account and key after
        ``since``, or None after storing these ones."""

    @abstractmethod
    def reclaim_idempotency(
        self, account: str, key: str, stale_keys: list[str], body_hash: str, task_keys: list[str], now: float
    ) -> bool:
        """Atomically: replace the claim of this account and key by this one if it still
        names ``stale_keys`` (tasks that were never written: the create that claimed the
        key failed); whether it did."""

    @abstractmethod
    def put_account(self, account: Account) -> None: ...

    def account(self, name: str) -> Account | None:
        return self._account("name", name)

    def account_by_secret_hash(self, secret_hash: str) -> Account | None:
        return self._account("secret_hash", secret_hash)

    def account_by_api_key_hash(self, api_key_hash: str) -> Account | None:
        return self._account("api_key_hash", api_key_hash)

    @abstractmethod
    def _account(self, column: str, value: str) -> Account | None:
        """The account whose unique ``column`` (name, secret_hash, api_key_hash) is ``value``."""

    @abstractmethod
    def accounts(self) -> list[Account]: ...

    @abstractmethod
    def delete_account(self, name: str) -> bool: ...

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """The schema version this journal was migrated to (docs/journal.md)."""

    @abstractmethod
    def close(self) -> None: ...


def open_journal(settings: Settings) -> Journal:
    """PostgreSQL when ``journal_dsn`` is set (a cluster), else SQLite in the data dir."""
    if settings.journal_dsn:
        from dragon.journal.postgres import PostgresJournal

        return PostgresJournal(settings.journal_dsn)
    from dragon.journal.sqlite import SQLiteJournal

    return SQLiteJournal(settings.journal_path)


def describe_journal(settings: Settings) -> str:
    """Where the journal is, for operators: never the DSN's user or password."""
    if settings.journal_dsn:
        from dragon.journal.postgres import describe

        return f"PostgreSQL at {describe(settings.journal_dsn)}"
    return f"SQLite at {settings.journal_path}"
