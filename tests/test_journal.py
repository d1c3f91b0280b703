"""The journal contract: every backend (SQLite, PostgreSQL) behaves the same, method by
method, including across processes and after a reopen."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest

from dragon.accounts import Account
from dragon.config import Settings
from dragon.journal import FencedError, History, Journal, open_journal
from dragon.journal import postgres as postgres_journal
from dragon.journal import sqlite as sqlite_journal
from dragon.journal.postgres import JournalConnectionError, PostgresJournal
from dragon.journal.sqlite import SQLiteJournal
from dragon.status import TaskRecord, TaskStatus, new_key, now_iso, shard_of
from tests.support.servers import PostgresServer
from tests.support.service import ROOT

Opener = Callable[[], Journal]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of a fresh, empty journal of each backend."""
    if request.param == "postgres":
        return Settings(data_dir=tmp_path, journal_dsn=request.getfixturevalue("postgres").new_database())
    return Settings(data_dir=tmp_path)


@pytest.fixture
def reopen(settings: Settings) -> Any:
    """Opens the test's journal again, as another process would; closes them all after."""
    opened: list[Journal] = []

    def open_() -> Journal:
        opened.append(open_journal(settings))
        return opened[-1]

    yield open_
    for journal in opened:
        journal.close()


@pytest.fixture
def journal(reopen: Opener) -> Journal:
    return reopen()


def _task(account: str = "alice", **params: Any) -> tuple[TaskRecord, TaskStatus]:
    record = TaskRecord(key=new_key(), account=account, task_name="hello", params={"name": "x", **params})
    return record, TaskStatus.queued(record)


def _ended(status: TaskStatus, state: Literal["success", "error"] = "success", result: Any = "done") -> TaskStatus:
    return TaskStatus(
        key=status.key,
        status=state,
        events={**status.events, state: now_iso()},
        result=result if state == "success" else None,
        error=None if state == "success" else "BoomError: x",
        version=status.version + 1,
        callbacks=status.callbacks,
    )


def _account(name: str, secret: str = "s", api_key: str | None = None) -> Account:
    return Account(
        name=name,
        secret_hash=f"secret-{secret}",
        api_key_hash=api_key and f"key-{api_key}",
        referrers=("https://app.example.com/*",),
        created_at=now_iso(),
        extra={"plan": "pro"},
    )


def test_settings_pick_the_backend(settings: Settings, journal: Journal) -> None:
    assert isinstance(journal, PostgresJournal if settings.journal_dsn else SQLiteJournal)


def test_written_tasks_read_back_as_they_were(journal: Journal) -> None:
    tasks = [_task(progress_hint=i, nested={"a": [1, 2.5, None], "é": "ü"}) for i in range(3)]
    journal.write(tasks, [])
    keys = [r.key for r, _ in tasks]
    assert journal.records(keys) == {r.key: r for r, _ in tasks}
    assert journal.statuses(keys) == {s.key: s for _, s in tasks}
    assert journal.statuses(["UNKNOWN", keys[0], keys[0]]) == {keys[0]: tasks[0][1]}
    assert journal.records([]) == {} and journal.statuses([]) == {}


def test_many_keys_are_read_in_one_call(journal: Journal) -> None:
    tasks = [_task() for _ in range(1200)]  # more than SQLite's chunk of bound variables
    journal.write(tasks, [])
    assert len(journal.statuses([r.key for r, _ in tasks])) == 1200


def test_updates_replace_the_status_and_unfinished_lists_oldest_first(journal: Journal) -> None:
    tasks = [_task() for _ in range(4)]
    for task in tasks:
        journal.write([task], [])
    executing = TaskStatus(key=tasks[1][1].key, status="executing", events=tasks[1][1].events, progress=0.5, version=1)
    journal.write([], [executing, _ended(tasks[2][1])])
    assert journal.statuses([executing.key])[executing.key] == executing
    unfinished = journal.unfinished()
    assert [r.key for r, _ in unfinished] == [tasks[0][0].key, tasks[1][0].key, tasks[3][0].key]
    assert unfinished[1] == (tasks[1][0], executing)


def test_a_task_created_again_replaces_the_first_and_moves_to_the_end(journal: Journal) -> None:
    first, second = _task(), _task()
    journal.write([first], [])
    journal.write([second], [])
    again = (first[0], TaskStatus.queued(first[0]))
    journal.write([again], [])
    assert journal.unfinished() == [second, again]


def test_an_empty_write_changes_nothing(journal: Journal) -> None:
    journal.write([], [])
    assert journal.unfinished() == []


def test_an_update_of_an_unknown_task_is_ignored(journal: Journal) -> None:
    _, status = _task()
    journal.write([], [_ended(status)])
    assert journal.statuses([status.key]) == {}


def test_a_task_created_ended_is_not_unfinished(journal: Journal) -> None:
    record, status = _task()
    journal.write([(record, _ended(status, "error"))], [])
    assert journal.unfinished() == []
    assert journal.statuses([record.key])[record.key].error == "BoomError: x"


def test_an_ended_status_with_a_callback_gets_one_pending_delivery(journal: Journal) -> None:
    record, status = _task(url_callback="http://cb/ok", url_errback="http://cb/err")
    plain_record, plain = _task()
    journal.write([(record, status), (plain_record, plain)], [])
    assert journal.deliveries([record.key]) == {} and journal.next_delivery_at() is None

    journal.write([], [_ended(status, "error"), _ended(plain)])
    [(key, delivery)] = journal.deliveries([record.key, plain_record.key]).items()
    assert key == record.key
    assert (delivery.url, delivery.account, delivery.state, delivery.attempts) == (
        "http://cb/err",
        "alice",
        "pending",
        [],
    )
    assert delivery.first_at == delivery.next_at

    journal.write([], [_ended(status, "error")])  # sent again: still one delivery
    assert journal.deliveries([record.key])[record.key].id == delivery.id
    assert journal.next_delivery_at() == delivery.next_at


def test_a_task_created_ended_with_a_callback_gets_its_delivery(journal: Journal) -> None:
    record, status = _task(url_callback="http://cb/ok")
    journal.write([(record, _ended(status))], [])
    assert journal.deliveries([record.key])[record.key].url == "http://cb/ok"


def test_due_deliveries_come_by_time_and_saved_ones_leave(journal: Journal) -> None:
    tasks = [_task(url_callback=f"http://cb/{i}") for i in range(3)]
    journal.write(tasks, [])
    journal.write([], [_ended(s) for _, s in tasks])
    found = journal.deliveries([r.key for r, _ in tasks])
    first, second, third = (found[r.key] for r, _ in tasks)
    moment = max(d.next_at for d in found.values())
    assert {d.id for d in journal.due_deliveries(moment, 10)} == {first.id, second.id, third.id}
    assert len(journal.due_deliveries(moment, 2)) == 2
    assert journal.due_deliveries(first.next_at - 1, 10) == []

    first.attempts.append({"at": 1.0, "http_status": 500})
    first.next_at = moment + 100
    journal.save_delivery(first)
    second.state = "delivered"
    second.attempts.append({"at": 2.0, "http_status": 200})
    journal.save_delivery(second)
    assert [d.id for d in journal.due_deliveries(moment, 10)] == [third.id]
    assert journal.deliveries([tasks[0][0].key])[tasks[0][0].key] == first
    assert journal.deliveries([tasks[1][0].key])[tasks[1][0].key] == second
    third.state = "failed"
    journal.save_delivery(third)
    assert journal.next_delivery_at() == moment + 100


def test_claim_idempotency_returns_the_first_claim_within_the_window(journal: Journal) -> None:
    assert journal.claim_idempotency("alice", "k", "h1", ["A"], since=0.0, now=100.0) is None
    assert journal.claim_idempotency("alice", "k", "h2", ["B"], since=50.0, now=110.0) == ("h1", ["A"])
    assert journal.claim_idempotency("bob", "k", "h3", ["C"], since=50.0, now=110.0) is None
    # Once the first claim is older than the window, a new one takes its place.
    assert journal.claim_idempotency("alice", "k", "h4", ["D", "E"], since=100.0, now=200.0) is None
    assert journal.claim_idempotency("alice", "k", "h5", ["F"], since=150.0, now=210.0) == ("h4", ["D", "E"])


def _claim(settings: Settings, contender: int, at: float) -> tuple[str, list[str]] | None:
    """One process's claim at the instant ``at``, through its own journal (a process
    pool entry point): the processes race, whatever their start-up times."""
    journal = open_journal(settings)
    time.sleep(max(0.0, at - time.time()))
    try:
        return journal.claim_idempotency("alice", "race", f"h{contender}", [f"K{contender}"], since=0.0, now=1.0)
    finally:
        journal.close()


def test_a_claim_is_taken_over_only_while_it_still_names_the_stale_keys(journal: Journal) -> None:
    assert journal.claim_idempotency("alice", "k", "h1", ["A"], since=0.0, now=1.0) is None
    assert not journal.reclaim_idempotency("alice", "k", ["Z"], "h2", ["B"], now=2.0)
    assert not journal.reclaim_idempotency("bob", "k", ["A"], "h2", ["B"], now=2.0)
    assert journal.reclaim_idempotency("alice", "k", ["A"], "h2", ["B"], now=2.0)
    assert not journal.reclaim_idempotency("alice", "k", ["A"], "h3", ["C"], now=3.0)
    assert journal.claim_idempotency("alice", "k", "h4", ["D"], since=0.0, now=4.0) == ("h2", ["B"])


def test_concurrent_claims_from_processes_and_threads_have_one_winner(settings: Settings, journal: Journal) -> None:
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_claim, [settings] * 4, range(4), [time.time() + 2] * 4))
    with ThreadPoolExecutor(8) as threads:  # and threads sharing one journal
        outcomes += threads.map(
            lambda i: journal.claim_idempotency("alice", "race", f"h{i}", [f"K{i}"], since=0.0, now=1.0), range(4, 12)
        )
    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1
    [winner] = winners
    assert all(outcome == (f"h{winner}", [f"K{winner}"]) for outcome in outcomes if outcome is not None)


def test_concurrent_writers_lose_nothing(reopen: Opener) -> None:
    journals = [reopen() for _ in range(3)]
    batches = [[_task() for _ in range(50)] for _ in range(12)]
    threads = [threading.Thread(target=journals[i % 3].write, args=(batch, [])) for i, batch in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(journals[0].unfinished()) == 600


def test_accounts_are_found_by_name_secret_and_api_key(journal: Journal) -> None:
    alice, bob = _account("alice", "a", "ka"), _account("bob", "b")
    journal.put_account(bob)
    journal.put_account(alice)
    assert journal.accounts() == [alice, bob]
    assert journal.account("alice") == alice
    assert journal.account_by_secret_hash("secret-b") == bob
    assert journal.account_by_api_key_hash("key-ka") == alice
    assert journal.account("carol") is None
    assert journal.account_by_secret_hash("nope") is None and journal.account_by_api_key_hash("nope") is None


def test_put_account_replaces_and_delete_removes(journal: Journal) -> None:
    journal.put_account(_account("alice", "a", "ka"))
    renewed = _account("alice", "a2")
    journal.put_account(renewed)
    assert journal.accounts() == [renewed]
    assert journal.account_by_secret_hash("secret-a") is None and journal.account_by_api_key_hash("key-ka") is None
    assert journal.delete_account("alice") is True
    assert journal.delete_account("alice") is False
    assert journal.accounts() == []


def test_everything_survives_close_and_reopen(journal: Journal, reopen: Opener) -> None:
    done_record, queued = _task(url_callback="http://cb/ok")
    done = _ended(queued)
    waiting = _task()
    journal.write([(done_record, queued), waiting], [])
    journal.write([], [done])
    journal.claim_idempotency("alice", "k", "h", ["A"], since=0.0, now=10.0)
    alice = _account("alice")
    journal.put_account(alice)
    journal.close()

    again = reopen()  # opening an existing journal again leaves its schema and rows alone
    assert again.statuses([done.key])[done.key] == done
    assert again.unfinished() == [waiting]
    assert again.deliveries([done.key])[done.key].state == "pending"
    assert again.claim_idempotency("alice", "k", "h2", ["B"], since=0.0, now=20.0) == ("h", ["A"])
    assert again.account("alice") == alice


def test_processes_opening_a_new_journal_at_once_all_succeed(settings: Settings) -> None:
    """Several actors open the journal as the service starts: the schema is created once."""
    script = (
        "import sys, time; from dragon.config import Settings; from dragon.journal import open_journal; "
        "settings = Settings.model_validate_json(sys.argv[1]); time.sleep(max(0, float(sys.argv[2]) - time.time())); "
        "open_journal(settings).accounts()"
    )
    payload = settings.model_dump_json(include={"data_dir", "journal_dsn"})
    at = str(time.time() + 2)  # after every interpreter has started: they open at once
    procs = [
        subprocess.Popen([sys.executable, "-c", script, payload, at], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors


def test_the_dsn_is_never_in_a_repr(postgres: PostgresServer) -> None:
    settings = Settings(journal_dsn=postgres.dsn("journal"))
    assert postgres.password not in repr(settings) and postgres.password not in str(settings)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://dragon:{password}-wrong@127.0.0.1:{port}/postgres",  # refused: wrong password
        "postgresql://dragon:{password}@127.0.0.1:1/postgres",  # nothing listening
        "postgresql://dragon:{password}@127.0.0.1:{port}/postgres?bogus=1",  # unparsable
        "host=127.0.0.1 port={port} user=dragon password='{password}' dbname=nowhere",  # no such database
    ],
)
def test_a_failed_connection_names_the_server_but_never_the_password(postgres: PostgresServer, dsn: str) -> None:
    dsn = dsn.format(password=postgres.password, port=postgres.port)
    with pytest.raises(JournalConnectionError) as failure:
        PostgresJournal(dsn)
    message = str(failure.value)
    assert message.startswith("JournalConnectionError: cannot open the journal at ")
    assert postgres.password not in message and failure.value.__cause__ is None
    assert failure.value.__suppress_context__


def _shard_task(shard: int, shards: int, **params: Any) -> tuple[TaskRecord, TaskStatus]:
    record = TaskRecord(key=new_key(shard, shards), account="alice", task_name="hello", params={"name": "x", **params})
    return record, TaskStatus.queued(record)


def test_each_shard_reads_only_its_own_unfinished_tasks_and_due_deliveries(journal: Journal) -> None:
    tasks = [_shard_task(i % 3, 3, url_callback=f"http://cb/{i}") for i in range(9)]
    journal.write(tasks, [])
    for shard in range(3):
        assert journal.unfinished(shard, 3) == [t for i, t in enumerate(tasks) if i % 3 == shard]
    journal.write([], [_ended(s) for _, s in tasks])
    moment = max(d.next_at for d in journal.deliveries([r.key for r, _ in tasks]).values())
    for shard in range(3):
        due = journal.due_deliveries(moment, 10, shard, 3)
        assert sorted(d.task_key for d in due) == sorted(r.key for i, (r, _) in enumerate(tasks) if i % 3 == shard)
        assert journal.next_delivery_at(shard, 3) == min(d.next_at for d in due)
    assert len(journal.due_deliveries(moment, 10)) == 9  # one shard: all of them


def _v1_journal(settings: Settings, tasks: list[tuple[TaskRecord, TaskStatus]], delivery_of: str) -> None:
    """A journal exactly as the release before versioned migrations left it, with rows."""
    rows = [
        (
            r.key,
            r.account,
            r.task_name,
            s.status,
            json.dumps(r.to_json()),
            json.dumps(s.to_json()),
            now_iso(),
            now_iso(),
        )
        for r, s in tasks
    ]
    delivery = ("d1", delivery_of, "alice", "http://cb/x", "pending", "[]", 1.0, 1.0)
    if settings.journal_dsn:
        with psycopg.connect(settings.journal_dsn) as conn:
            conn.execute(postgres_journal.V1)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO tasks (key, account, task_name, state, record, status, created_at, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )
            conn.execute("INSERT INTO deliveries VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", delivery)
        return
    settings.journal_path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.journal_path)
    for statement in sqlite_journal.V1:
        db.execute(statement)
    db.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", delivery)
    db.commit()
    db.close()


def test_a_journal_of_the_previous_release_is_migrated_once_and_keeps_its_rows(
    settings: Settings, reopen: Opener
) -> None:
    tasks = [_shard_task(i % 2, 2) for i in range(6)]
    _v1_journal(settings, tasks, delivery_of=tasks[3][0].key)
    journal = reopen()
    assert journal.schema_version == len(sqlite_journal.MIGRATIONS) == len(postgres_journal.MIGRATIONS)
    assert journal.statuses([r.key for r, _ in tasks]) == {r.key: s for r, s in tasks}
    for shard in range(2):  # the new bucket column was filled from the keys
        assert journal.unfinished(shard, 2) == [t for i, t in enumerate(tasks) if i % 2 == shard]
    assert [d.id for d in journal.due_deliveries(2.0, 10, shard_of(tasks[3][0].key, 2), 2)] == ["d1"]
    journal.write([_task()], [])
    assert (
        reopen().schema_version == len(sqlite_journal.MIGRATIONS) and len(reopen().unfinished()) == 7
    )  # reopening migrates nothing again
    assert journal.acquire_lease("head", 30).token == 1  # v4: the lease starts free


def test_a_journal_newer_than_this_release_is_refused(settings: Settings, reopen: Opener) -> None:
    journal = reopen()
    if settings.journal_dsn:
        with psycopg.connect(settings.journal_dsn) as conn:
            conn.execute("UPDATE dragon_schema SET version = 99")
    else:
        with sqlite3.connect(settings.journal_path) as db:
            db.execute("PRAGMA user_version = 99")
    journal.close()
    with pytest.raises(RuntimeError, match="newer than this release"):
        reopen()


def test_several_changes_of_one_task_in_one_write_keep_the_newest(journal: Journal) -> None:
    record, queued = _task()
    executing = TaskStatus(key=record.key, status="executing", events=queued.events, progress=10, version=2)
    later = TaskStatus(key=record.key, status="executing", events=queued.events, progress=90, version=3)
    journal.write([(record, queued)], [executing, later])
    assert journal.statuses([record.key])[record.key] == later
    journal.write([], [executing, later, _ended(later)])
    assert journal.statuses([record.key])[record.key].status == "success"


def _history(journal: Journal, query: History) -> list[str]:
    return [key for _, key, _ in journal.history(query)]


def test_the_history_is_an_accounts_tasks_newest_first_filtered_and_paged(journal: Journal) -> None:
    tasks = []
    for i in range(7):  # one write each: each its own creation time
        record = TaskRecord(key=new_key(), account="alice", task_name="hello" if i % 2 else "image.info", params={})
        tasks.append((record, TaskStatus.queued(record)))
        journal.write([tasks[-1]], [])
    journal.write([_task("bob")], [])
    ends = [_ended(tasks[1][1], "error"), _ended(tasks[4][1], "error"), _ended(tasks[5][1])]
    journal.write([], ends)
    keys = [r.key for r, _ in tasks]
    newest_first = keys[::-1]

    assert _history(journal, History("alice")) == newest_first
    assert _history(journal, History("carol")) == []
    assert _history(journal, History("alice", states=("error",))) == [keys[4], keys[1]]
    assert _history(journal, History("alice", states=("error", "success"))) == [keys[5], keys[4], keys[1]]
    assert _history(journal, History("alice", task_name="hello")) == [keys[5], keys[3], keys[1]]
    rows = journal.history(History("alice"))
    created = {key: at for at, key, _ in rows}
    assert _history(journal, History("alice", since=created[keys[2]], until=created[keys[5]])) == keys[2:5][::-1]
    first = journal.history(History("alice", limit=3))
    assert [key for _, key, _ in first] == newest_first[:3]
    after = journal.history(History("alice", before=first[-1][:2], limit=3))
    assert [key for _, key, _ in after] == newest_first[3:6]
    [(_, _, status)] = journal.history(History("alice", states=("error",), limit=1))
    assert TaskStatus.from_json(json.loads(status)) == ends[1]


def test_tasks_created_in_one_write_are_paged_by_key(journal: Journal) -> None:
    tasks = [_task() for _ in range(5)]
    journal.write(tasks, [])
    newest_first = sorted((r.key for r, _ in tasks), reverse=True)
    first = journal.history(History("alice", limit=2))
    rest = journal.history(History("alice", before=first[-1][:2]))
    assert [k for _, k, _ in first + rest] == newest_first


def test_a_history_page_is_read_from_an_index(settings: Settings, journal: Journal) -> None:
    journal.write([_task() for _ in range(3)], [])
    queries = [History("alice", limit=100), History("alice", states=("error",), before=("2030", "K"), limit=100)]
    for query in queries:
        if settings.journal_dsn:
            where, values = query.where("%s")
            with psycopg.connect(settings.journal_dsn) as conn:
                conn.execute("SET enable_seqscan = off")  # a tiny table: PostgreSQL would scan it anyway
                plan = " ".join(
                    r[0]
                    for r in conn.execute(
                        f"EXPLAIN SELECT key FROM tasks WHERE {where} ORDER BY created_at DESC, key DESC LIMIT 100",
                        values,
                    )
                )
            assert "tasks_history" in plan and "Sort" not in plan, plan
        else:
            where, values = query.where("?")
            with sqlite3.connect(settings.journal_path) as db:
                plan = " ".join(
                    r[3]
                    for r in db.execute(
                        f"EXPLAIN QUERY PLAN SELECT key FROM tasks WHERE {where} ORDER BY created_at DESC, key DESC LIMIT 100",
                        values,
                    )
                )
            assert "tasks_history" in plan and "TEMP B-TREE" not in plan, plan


def test_unfinished_counts_are_an_accounts_queued_and_executing_tasks(journal: Journal) -> None:
    assert journal.unfinished_counts("alice") == {"queued": 0, "executing": 0}
    tasks = [_task() for _ in range(4)] + [_task("bob")]
    journal.write(tasks, [])
    executing = TaskStatus(key=tasks[0][1].key, status="executing", events=tasks[0][1].events, version=1)
    journal.write([], [executing, _ended(tasks[1][1])])
    assert journal.unfinished_counts("alice") == {"queued": 2, "executing": 1}
    assert journal.unfinished_counts("bob") == {"queued": 1, "executing": 0}


def test_one_head_holds_the_lease_until_it_lapses_then_another_takes_it_with_a_greater_token(reopen: Opener) -> None:
    a, b = reopen(), reopen()
    first = a.acquire_lease("A", 30)
    assert first.acquired and first.holder == "A"
    refused = b.acquire_lease("B", 30)
    assert not refused.acquired and refused.holder == "A" and 25 < refused.expires_in <= 30
    assert a.acquire_lease("A", 0.5) == first.__class__("A", first.token, 0.5, True)  # its own: same token
    assert a.renew_lease("A", first.token, 0.5)
    time.sleep(0.7)
    taken = b.acquire_lease("B", 30)
    assert taken.acquired and taken.token == first.token + 1
    assert not a.renew_lease("A", first.token, 30)  # lapsed and taken: gone for good
    assert not a.acquire_lease("A", 30).acquired


def test_a_released_lease_is_taken_at_once(reopen: Opener) -> None:
    a, b = reopen(), reopen()
    lease = a.acquire_lease("A", 30)
    b.release_lease("B", lease.token)  # not the holder: nothing happens
    assert not b.acquire_lease("B", 30).acquired
    a.release_lease("A", lease.token)
    assert b.acquire_lease("B", 30).token == lease.token + 1


def test_heads_asking_at_once_get_one_lease(reopen: Opener) -> None:
    journals = [reopen() for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        leases = list(pool.map(lambda i: journals[i].acquire_lease(f"head-{i}", 30), range(6)))
    winners = [lease for lease in leases if lease.acquired]
    assert len(winners) == 1 and {lease.holder for lease in leases} == {winners[0].holder}


def test_a_fenced_journal_writes_nothing_once_another_head_took_the_lease(reopen: Opener) -> None:
    stale, fresh = reopen(), reopen()
    old = stale.acquire_lease("old", 0.3)
    stale.fence(old.token)
    written, late = _task(url_callback="http://cb/ok"), _task()
    ended = _ended(written[1])
    stale.write([written], [ended])
    [delivery] = stale.deliveries([written[0].key]).values()
    time.sleep(0.5)
    new = fresh.acquire_lease("new", 30)
    fresh.fence(new.token)
    with pytest.raises(FencedError, match=r"^FencedError: head new took the journal's lease"):
        stale.write([late], [])
    with pytest.raises(FencedError):
        stale.write([], [_ended(written[1], "error")])
    with pytest.raises(FencedError):
        stale.claim_idempotency("alice", "k", "h", [late[0].key], 0.0, time.time())
    delivery.state = "delivered"
    with pytest.raises(FencedError):
        stale.save_delivery(delivery)
    assert fresh.statuses([written[0].key, late[0].key]) == {written[0].key: ended}
    assert fresh.deliveries([written[0].key])[written[0].key].state == "pending"
    assert (
        fresh.claim_idempotency("alice", "k", "h", [late[0].key], 0.0, time.time()) is None
    )  # the stale claim never was
    fresh.write([late], [])
    assert [r.key for r, _ in fresh.unfinished()] == [late[0].key]
