"""Journal write throughput of both backends: SQLite in a temporary data dir and
PostgreSQL (a throwaway local cluster, or the one --dsn names).

Writes N tasks the way a status shard does: one ``write`` (one durable transaction) per
batch of new tasks, then one per batch of their final statuses; batch 1 is a shard
with a single request in flight, larger batches are its group commit under load.
Each figure is the best of three runs (the machine is shared). Each backend is measured
twice, side by side: unfenced, and fenced as a shard's journal is (every write first
checks the lease's token in its transaction: docs/journal.md); the last column is the
fenced commit rate over the unfenced one.

    python benchmarks/journal.py [--tasks 4000] [--batches 1,16,256] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dragon.config import Settings  # noqa: E402
from dragon.journal import Journal, open_journal  # noqa: E402
from dragon.status import TaskRecord, TaskStatus, new_key, now_iso  # noqa: E402
from tests.support.servers import PostgresServer  # noqa: E402


def measure(journal: Journal, tasks: int, batch: int) -> tuple[float, float]:
    """Statuses per second for creates and for final updates, at ``batch`` per write."""
    records = [
        TaskRecord(key=new_key(), account="bench", task_name="hello", params={"name": f"n{i}"}) for i in range(tasks)
    ]
    queued = [(r, TaskStatus.queued(r)) for r in records]
    ended = [
        TaskStatus(
            key=s.key, status="success", events={**s.events, "success": now_iso()}, result=f"Hello n{i}", version=1
        )
        for i, (_, s) in enumerate(queued)
    ]
    start = time.perf_counter()
    for i in range(0, tasks, batch):
        journal.write(queued[i : i + batch], [])
    created = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, tasks, batch):
        journal.write([], ended[i : i + batch])
    updated = time.perf_counter() - start
    return tasks / created, tasks / updated


def _commits(runs: list[tuple[float, float]], tasks: int, batch: int) -> float:
    """Commits per second over the best create and update rates of ``runs``."""
    creates, updates = max(c for c, _ in runs), max(u for _, u in runs)
    return 2 * tasks / (tasks / creates + tasks / updates) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000, help="tasks per batch size (a quarter at batch 1)")
    parser.add_argument("--batches", default="1,16,256")
    parser.add_argument("--dsn", help="an existing PostgreSQL database (default: a throwaway local cluster)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    server = None if args.dsn else PostgresServer()
    dsn = args.dsn or server.new_database()  # type: ignore[union-attr]
    print(f"{platform.node()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"{'backend':<11}{'batch':>6}{'tasks':>8}{'creates/s':>12}{'updates/s':>12}{'commits/s':>12}"
        f"{'fenced':>10}{'ratio':>8}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dragon-bench-journal-") as data:
            for backend, settings in (
                ("sqlite", Settings(data_dir=Path(data))),
                ("postgres", Settings(journal_dsn=dsn)),
            ):
                journal, fenced = open_journal(settings), open_journal(settings)
                fenced.fence(fenced.acquire_lease("benchmark", 3600).token)
                try:
                    for batch in batches:
                        tasks = args.tasks // 4 if batch == 1 else args.tasks
                        plain, guarded = [], []
                        for _ in range(3):  # interleaved, so both see the same load
                            plain.append(measure(journal, tasks, batch))
                            guarded.append(measure(fenced, tasks, batch))
                        creates, updates = max(c for c, _ in plain), max(u for _, u in plain)
                        commits = _commits(plain, tasks, batch)
                        fenced_commits = _commits(guarded, tasks, batch)
                        print(
                            f"{backend:<11}{batch:>6}{tasks:>8}{creates:>12,.0f}{updates:>12,.0f}{commits:>12,.0f}"
                            f"{fenced_commits:>10,.0f}{fenced_commits / commits:>8.2f}"
                        )
                finally:
                    journal.close()
                    fenced.close()
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
