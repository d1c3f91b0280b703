"""A page of the task history (GET /v2/tasks) from a journal of 1,000,000 tasks, on
SQLite and on PostgreSQL (a throwaway local cluster, or the one --dsn names).

The journal is filled as the service leaves it (schema of this release, rows as
``Journal.write`` builds them), in bulk: one account holds 90% of the tasks, 99 others
the rest; 97% succeeded, 2% failed, 1% are queued; a tenth are video.create. Each query
is the one ``Journal.history`` runs; it is timed with the history indexes (this release)
and without them (the same journal at schema v2: a scan and a sort), side by side, and
the ratio printed. Each figure is the median of several runs (the machine is shared).

    python benchmarks/history.py [--tasks 1000000] [--backends sqlite,postgres] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from dragon.config import Settings  # noqa: E402
from dragon.journal import History, open_journal  # noqa: E402
from dragon.journal.rows import TASK_COLUMNS  # noqa: E402
from dragon.status import TaskRecord, TaskStatus, bucket, new_key  # noqa: E402

BIG = "big"
PAGE = 100
START = datetime(2026, 1, 1, tzinfo=UTC)


def rows(tasks: int) -> Iterator[tuple[Any, ...]]:
    """TASK_COLUMNS rows, a task a second from START."""
    for i in range(tasks):
        account = BIG if i % 10 else f"small{i % 99}"
        task_name = "video.create" if i % 10 == 3 else "hello"
        state = "error" if i % 50 == 7 else "queued" if i % 100 == 11 else "success"
        created = (START + timedelta(seconds=i)).isoformat(timespec="microseconds")
        record = TaskRecord(key=new_key(), account=account, task_name=task_name, params={"name": f"n{i}"})
        status = TaskStatus(
            key=record.key,
            status=state,
            events={"queued": created},  # type: ignore[arg-type]
            result=f"Hello n{i}" if state == "success" else None,
            error="BoomError: x" if state == "error" else None,
        )
        if state != "queued":
            status.events[state] = created
        yield (
            record.key,
            account,
            task_name,
            state,
            json.dumps(record.to_json()),
            json.dumps(status.to_json()),
            created,
            created,
            bucket(record.key),
        )


def queries(tasks: int) -> list[tuple[str, History]]:
    middle = (START + timedelta(seconds=tasks // 2)).isoformat(timespec="microseconds")
    hour = (START + timedelta(seconds=tasks // 2 + 3600)).isoformat(timespec="microseconds")
    return [
        ("newest 100", History(BIG, limit=PAGE)),
        ("a page deep in the middle (cursor)", History(BIG, before=(middle, "Z" * 26), limit=PAGE)),
        ("status=error", History(BIG, states=("error",), limit=PAGE)),
        ("status=error, an hour (from/to)", History(BIG, states=("error",), since=middle, until=hour, limit=PAGE)),
        ("task_name=video.create", History(BIG, task_name="video.create", limit=PAGE)),
        ("an account of 0.1% of the tasks", History("small5", limit=PAGE)),
    ]


def page(execute: Callable[..., Any], sql: str, params: list[Any]) -> list:
    return execute(sql, params).fetchall()


def median_ms(run: Callable[[], list], times: int) -> tuple[float, int]:
    found = 0
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        found = len(run())
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), found


SELECT = "SELECT created_at, key, {status} FROM tasks WHERE {where} ORDER BY created_at DESC, key DESC LIMIT {mark}"


def sqlite_side(path: Path, tasks: int) -> Iterator[tuple[str, float, float, int]]:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("BEGIN")
    fill = rows(tasks)
    while chunk := [row for _, row in zip(range(10_000), fill)]:
        db.executemany(f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 9)})", chunk)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    for name, query in queries(tasks):
        where, values = query.where("?")
        sql = SELECT.format(status="status", where=where, mark="?")
        run = functools.partial(page, db.execute, sql, [*values, query.limit])
        indexed, found = median_ms(run, 21)
        db.execute("BEGIN")
        db.execute("DROP INDEX tasks_history")
        db.execute("DROP INDEX tasks_history_state")
        scanned, _ = median_ms(run, 3)
        db.execute("ROLLBACK")
        yield name, indexed, scanned, found
    db.close()


def postgres_side(dsn: str, tasks: int) -> Iterator[tuple[str, float, float, int]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY tasks ({TASK_COLUMNS}) FROM STDIN") as copy:
            for row in rows(tasks):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE tasks")
        for name, query in queries(tasks):
            where, values = query.where("%s")
            sql = SELECT.format(status="status::text", where=where, mark="%s")
            run = functools.partial(page, conn.execute, sql, [*values, query.limit])
            indexed, found = median_ms(run, 21)
            with conn.transaction(force_rollback=True):
                conn.execute("DROP INDEX tasks_history")
                conn.execute("DROP INDEX tasks_history_state")
                scanned, _ = median_ms(run, 3)
            yield name, indexed, scanned, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--dsn", help="an empty PostgreSQL database (default: a throwaway local cluster)")
    args = parser.parse_args()
    print(
        f"{platform.node()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{args.tasks:,} tasks ({args.tasks * 9 // 10:,} of one account)"
    )
    print(f"{'backend':<10}{'query':<38}{'rows':>6}{'indexed ms':>12}{'no index ms':>13}{'ratio':>8}")
    backends = args.backends.split(",")
    server = None
    if not args.dsn and "postgres" in backends:
        from tests.support.servers import PostgresServer

        server = PostgresServer()
    dsn = args.dsn or (server.new_database() if server else None)
    try:
        with tempfile.TemporaryDirectory(prefix="dragon-bench-history-") as data:
            settings = Settings(data_dir=Path(data))
            for backend, side in (
                ("sqlite", lambda: sqlite_side(settings.journal_path, args.tasks)),
                ("postgres", lambda: postgres_side(dsn, args.tasks)),
            ):
                if backend not in backends:
                    continue
                open_journal(Settings(data_dir=Path(data), journal_dsn=dsn if backend == "postgres" else None)).close()
                for name, indexed, scanned, found in side():
                    print(
                        f"{backend:<10}{name:<38}{found:>6}{indexed:>12.2f}{scanned:>13.1f}{scanned / indexed:>7.0f}x",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
