"""SQLite journal: one file in the data directory, WAL mode, fsync on every commit.

Several processes (status shards, API replicas, the CLI) open the same file; SQLite's
own locking serialises writers, and WAL lets readers proceed meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from dragon.accounts import Account
from dragon.journal import Delivery, History, Journal, Lease, take_lease
from dragon.journal.rows import (
    DELIVERY_COLUMNS,
    TASK_COLUMNS,
    UNFINISHED_COUNTS,
    account_from_json,
    account_to_json,
    delivery_from_row,
    write_rows,
)
from dragon.status import TaskRecord, TaskStatus, bucket

T = TypeVar("T")


def _rows(columns: str, count: int) -> str:
    """``(?, ?, ...), (?, ?, ...)``: ``count`` rows of placeholders for ``columns``."""
    row = "(" + ", ".join("?" for _ in columns.split(",")) + ")"
    return ", ".join([row] * count)


def _chunks(rows: list[T], size: int = 200) -> Iterator[list[T]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# The schema of each version, in order; a journal at version N runs the steps after N,
# once, in one transaction (docs/journal.md). Never edit a released step: add one.
V1 = [
    """CREATE TABLE IF NOT EXISTS tasks (
        key TEXT PRIMARY KEY, account TEXT NOT NULL, task_name TEXT NOT NULL, state TEXT NOT NULL,
        record TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks(created_at) WHERE state IN ('queued', 'executing')",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY, task_key TEXT NOT NULL UNIQUE, account TEXT NOT NULL, url TEXT NOT NULL,
        state TEXT NOT NULL, attempts TEXT NOT NULL, first_at REAL NOT NULL, next_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_at) WHERE state = 'pending'",
    """CREATE TABLE IF NOT EXISTS idempotency (
        account TEXT NOT NULL, key TEXT NOT NULL, body_hash TEXT NOT NULL, task_keys TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (account, key))""",
    """CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE, api_key_hash TEXT UNIQUE, data TEXT NOT NULL)""",
]
# v2: each task and delivery knows its key's bucket, so each shard reads only its own.
V2 = [
    "ALTER TABLE tasks ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE deliveries ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0",
    "UPDATE tasks SET bucket = dragon_bucket(key)",
    "UPDATE deliveries SET bucket = dragon_bucket(task_key)",
]
# v3: an account's task history, newest first, a page at a time (GET /v2/tasks).
V3 = [
    "CREATE INDEX IF NOT EXISTS tasks_history ON tasks(account, created_at, key)",
    "CREATE INDEX IF NOT EXISTS tasks_history_state ON tasks(account, state, created_at, key)",
]
# v4: the lease of the queue and its fencing token, one row (docs/journal.md).
V4 = [
    "CREATE TABLE IF NOT EXISTS lease (holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL)",
    "INSERT INTO lease VALUES ('', 0, 0)",
]
MIGRATIONS: list[list[str]] = [V1, V2, V3, V4]

_CHUNK = 500  # keys per IN (...) query, below SQLite's variable limit


class SQLiteJournal(Journal):
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self._wal_mode()
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.create_function("dragon_bucket", 1, bucket, deterministic=True)
        with self._lock:
            self._transaction(self._migrate)

    def _wal_mode(self, patience: float = 30.0) -> None:
        """Switching a new file to WAL needs it alone, and SQLite answers "database is
        locked" at once, without its busy timeout, while another process (actors opening
        the journal as the service starts) holds it: wait as the timeout would."""
        deadline = time.monotonic() + patience
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _transaction(self, work: Callable[[], T]) -> T:
        """``work`` in one write transaction: BEGIN IMMEDIATE takes the writer lock first,
        so two processes never interleave read-then-write (migrations, claims)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return result

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the journal's schema (v{version}) is newer than this release (v{len(MIGRATIONS)})")
        for number, steps in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in steps:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    # the lease (one machine: the clock is this machine's)

    def acquire_lease(self, holder: str, ttl: float) -> Lease:
        def work() -> Lease:
            now = time.time()
            changed, lease = take_lease(
                self._db.execute("SELECT holder, token, expires_at FROM lease").fetchone(), holder, now, ttl
            )
            if changed:
                self._db.execute(
                    "UPDATE lease SET holder = ?, token = ?, expires_at = ?", (holder, lease.token, now + ttl)
                )
            return lease

        with self._lock:
            return self._transaction(work)

    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        with self._lock:
            return (
                self._db.execute(
                    "UPDATE lease SET expires_at = ? WHERE holder = ? AND token = ?", (time.time() + ttl, holder, token)
                ).rowcount
                == 1
            )

    def release_lease(self, holder: str, token: int) -> None:
        with self._lock:
            self._db.execute("UPDATE lease SET expires_at = 0 WHERE holder = ? AND token = ?", (holder, token))

    def _check_fence(self) -> None:
        """Inside a write transaction (BEGIN IMMEDIATE: no takeover can commit meanwhile)."""
        if self._fence is not None:
            holder, token = self._db.execute("SELECT holder, token FROM lease").fetchone()
            if token != self._fence:
                raise self._fence_error(token, holder)

    # tasks

    def write(self, created: Iterable[tuple[TaskRecord, TaskStatus]], updated: Iterable[TaskStatus]) -> None:
        rows = write_rows(created, updated)
        if not rows:
            return

        # Many rows per statement: the sqlite3 module lets go of the GIL around every
        # statement it runs, and a writer thread that must win the GIL back once per row
        # from a busy event loop waits a switch interval (5 ms) per row.
        def work() -> None:
            self._check_fence()
            for chunk in _chunks(rows.created):
                self._db.execute(
                    f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES {_rows(TASK_COLUMNS, len(chunk))}",
                    [value for row in chunk for value in row],
                )
            for updated in _chunks(list({row[3]: row for row in rows.updated}.values())):  # a key's newest
                self._db.execute(
                    f"WITH v(state, status, updated_at, key) AS (VALUES {_rows('a, b, c, d', len(updated))}) UPDATE tasks"
                    " SET state = v.state, status = v.status, updated_at = v.updated_at FROM v WHERE tasks.key = v.key",
                    [value for row in updated for value in row],
                )
            for delivered in _chunks(rows.deliveries):
                self._db.execute(
                    f"INSERT OR IGNORE INTO deliveries ({DELIVERY_COLUMNS}) VALUES {_rows(DELIVERY_COLUMNS, len(delivered))}",
                    [value for row in delivered for value in row],
                )

        with self._lock:
            self._transaction(work)

    def _select(self, column: str, keys: Iterable[str]) -> list[tuple[str, str]]:
        keys = list(dict.fromkeys(keys))
        rows: list[tuple[str, str]] = []
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(f"SELECT key, {column} FROM tasks WHERE key IN ({marks})", chunk).fetchall()
        return rows

    def unfinished(self, shard: int = 0, shards: int = 1) -> list[tuple[TaskRecord, TaskStatus]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record, status FROM tasks WHERE state IN ('queued', 'executing') AND bucket % ? = ?"
                " ORDER BY created_at, rowid",
                (shards, shard),
            ).fetchall()
        return [(TaskRecord.from_json(json.loads(r)), TaskStatus.from_json(json.loads(s))) for r, s in rows]

    def history(self, query: History) -> list[tuple[str, str, str]]:
        where, values = query.where("?")
        with self._lock:
            return self._db.execute(
                f"SELECT created_at, key, status FROM tasks WHERE {where} ORDER BY created_at DESC, key DESC LIMIT ?",
                [*values, query.limit],
            ).fetchall()

    def unfinished_counts(self, account: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(UNFINISHED_COUNTS.replace("%s", "?"), (account,)).fetchall()
        return {"queued": 0, "executing": 0, **dict(rows)}

    # callback deliveries

    def due_deliveries(self, now: float, limit: int, shard: int = 0, shards: int = 1) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' AND next_at <= ? AND bucket % ? = ?"
                " ORDER BY next_at LIMIT ?",
                (now, shards, shard, limit),
            ).fetchall()
        return [delivery_from_row(r) for r in rows]

    def next_delivery_at(self, shard: int = 0, shards: int = 1) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND bucket % ? = ?", (shards, shard)
            ).fetchone()
        return row[0] if row else None

    def save_delivery(self, d: Delivery) -> None:
        def work() -> None:
            self._check_fence()
            self._db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_at = ? WHERE id = ?",
                (d.state, json.dumps(d.attempts), d.next_at, d.id),
            )

        with self._lock:
            self._transaction(work)

    def deliveries(self, task_keys: Iterable[str]) -> dict[str, Delivery]:
        keys = list(task_keys)
        found: dict[str, Delivery] = {}
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE task_key IN ({marks})", chunk
                ):
                    found[row[1]] = delivery_from_row(row)
        return found

    # idempotent create

    def claim_idempotency(
        self, account: str, key: str, body_hash: str, task_keys: list[str], since: float, now: float
    ) -> tuple[str, list[str]] | None:
        def work() -> tuple[str, str] | None:
            self._check_fence()
            row = self._db.execute(
                "SELECT body_hash, task_keys FROM idempotency WHERE account = ? AND key = ? AND created_at > ?",
                (account, key, since),
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                    (account, key, body_hash, json.dumps(task_keys), now),
                )
            return row

        with self._lock:
            row = self._transaction(work)
        return (row[0], json.loads(row[1])) if row else None

    def reclaim_idempotency(
        self, account: str, key: str, stale_keys: list[str], body_hash: str, task_keys: list[str], now: float
    ) -> bool:
        def work() -> bool:
            self._check_fence()
            done = self._db.execute(
                "UPDATE idempotency SET body_hash = ?, task_keys = ?, created_at = ?"
                " WHERE account = ? AND key = ? AND task_keys = ?",
                (body_hash, json.dumps(task_keys), now, account, key, json.dumps(stale_keys)),
            )
            return done.rowcount == 1

        with self._lock:
            return self._transaction(work)

    # accounts

    def put_account(self, account: Account) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?)",
                (account.name, account.secret_hash, account.api_key_hash, account_to_json(account)),
            )

    def _account(self, column: str, value: str) -> Account | None:
        with self._lock:
            row = self._db.execute(f"SELECT data FROM accounts WHERE {column} = ?", (value,)).fetchone()
        return account_from_json(row[0]) if row else None

    def accounts(self) -> list[Account]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM accounts ORDER BY name").fetchall()
        return [account_from_json(r[0]) for r in rows]

    def delete_account(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM accounts WHERE name = ?", (name,)).rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
