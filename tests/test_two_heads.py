"""Two heads on one journal (an operator's mistake, a network split): the journal's lease
lets one own the queue. A second head waits for it, then refuses to start and says why
(exit code 3); a head that lost its lease writes nothing more and stops
(docs/deployment.md, "Two heads on one journal")."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Api, service_env
from tests.support.platforms import Platforms
from tests.support.servers import signal_all
from tests.support.service import DragonProcess

LEASE = {"DRAGON_LEASE_SECONDS": "4", "DRAGON_LEASE_WAIT_SECONDS": "10"}
LEASE_EXIT_CODE = 3


@pytest.fixture(params=["sqlite", "postgres"])
def first(request: pytest.FixtureRequest, tmp_path: Path, platforms: Platforms) -> Iterator[DragonProcess]:
    """A head, on a journal of each kind."""
    env = {**service_env(platforms), **LEASE}
    if request.param == "postgres":
        env["DRAGON_JOURNAL_DSN"] = request.getfixturevalue("postgres").new_database()
    (tmp_path / "first").mkdir()
    head = DragonProcess(tmp_path / "first" / "data", env)
    head.start()
    yield head
    if head.proc is not None:
        head.stop()


def _second(first: DragonProcess, tmp_path: Path) -> DragonProcess:
    """Another head on the same journal: on SQLite, the same data dir (the journal's file
    is there); on PostgreSQL, an empty one."""
    env = {k: v for k, v in first.env.items() if k != "DRAGON_TEST_INSTANCE"}
    if "DRAGON_JOURNAL_DSN" not in env:
        return DragonProcess(first.data_dir, env)
    (tmp_path / "second").mkdir()
    return DragonProcess(tmp_path / "second" / "data", env)


def _rows(head: DragonProcess, query: str) -> list[tuple[Any, ...]]:
    """Read straight from the journal, not through a head."""
    if "DRAGON_JOURNAL_DSN" in head.env:
        with psycopg.connect(head.env["DRAGON_JOURNAL_DSN"]) as conn:
            return conn.execute(query).fetchall()
    with sqlite3.connect(head.data_dir / "journal.sqlite3") as db:
        return db.execute(query).fetchall()


def _lease(head: DragonProcess) -> tuple[str, int]:
    [row] = _rows(head, "SELECT holder, token FROM lease")
    return row


def _gated(api: Api, tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    gate = tmp_path / "gate"
    tasks = [
        {"task_name": "test.gate", "gate": str(gate), "pid_file": str(tmp_path / f"pid-{i}")} for i in range(count)
    ]
    keys = [s["key"] for s in api.create(tasks)]
    for key in keys:
        api.wait_for(key, "executing")
    return gate, keys


def test_a_second_head_on_the_journal_waits_then_refuses_and_the_first_runs_every_task_once(
    first: DragonProcess, tmp_path: Path
) -> None:
    api = Api(first.url, first.cli("accounts", "create", "ivy")["secret"], first)
    owner = _lease(first)
    gate, keys = _gated(api, tmp_path, 3)

    second = _second(first, tmp_path)
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=f"dragon serve exited with {LEASE_EXIT_CODE}"):
        second.start()
    assert time.monotonic() - began > 10  # it waited for the lease first
    log = (second.data_dir.parent / "serve.log").read_text()
    assert f"waiting for the journal's lease: head {owner[0]} holds it" in log
    assert f"dragon serve: LeaseHeldError: another head ({owner[0]}) holds the journal's lease" in log
    assert second.pids("") == []  # its Ray cluster went with it
    assert (first.data_dir / "ray-address").read_text().strip() == first.ray_address  # on SQLite, the same file

    gate.touch()
    final = api.wait(keys)
    assert [s["status"] for s in final] == ["success"] * 3
    assert [s["result"]["attempt"] for s in final] == [1, 1, 1]
    assert all(s["result"]["pid"] in first.pids("") for s in final)  # run by the first head's workers, once each
    assert [d["details"]["attempts"] for d in api.status(keys, details="true")] == [1, 1, 1]
    assert _lease(first) == owner  # still the first head's, with the same token
    assert api.create({"task_name": "hello", "name": "still"}, block=True)[0]["result"] == "Hello still"


@pytest.mark.parametrize("first", ["postgres"], indirect=True)
def test_a_head_cut_off_loses_its_lease_then_writes_nothing_and_stops(first: DragonProcess, tmp_path: Path) -> None:
    """The first head is frozen (SIGSTOP: a network split, a stalled machine) with tasks
    running; a second head takes the lapsed lease over and runs them; the first, thawed,
    finishes its attempts too, but the journal refuses what it writes, and it stops."""
    api = Api(first.url, first.cli("accounts", "create", "ivy")["secret"], first)
    gate, keys = _gated(api, tmp_path, 2)
    holder, token = _lease(first)

    signal_all(first.pids(""), signal.SIGSTOP)
    second = _second(first, tmp_path)
    try:
        second.start()
        assert _lease(second)[1] == token + 1
        other = Api(second.url, api.secret, second)
        gate.touch()
        final = other.wait(keys)
        assert [s["status"] for s in final] == ["success"] * 2
        assert all(s["result"]["pid"] in second.pids("") for s in final)  # the second head ran them again

        signal_all(first.pids(""), signal.SIGCONT)
        # Thawed, the first head's attempts pass the open gate and end: nothing of theirs is written.
        assert first.proc is not None and first.proc.wait(120) == LEASE_EXIT_CODE
        first.proc = None
        log = (first.data_dir.parent / "serve.log").read_text()
        assert f"dragon serve: this head ({holder}, token {token}) stopped running tasks" in log
        assert other.status(keys) == final
        stored = {key: json.loads(status) for key, status in _rows(second, "SELECT key, status::text FROM tasks")}
        assert [(stored[s["key"]]["result"], stored[s["key"]]["events"]) for s in final] == [
            (s["result"], s["events"]) for s in final
        ]  # the journal holds the second head's ends only
        assert other.create({"task_name": "hello", "name": "after"}, block=True)[0]["result"] == "Hello after"
    finally:
        signal_all(first.pids(""), signal.SIGCONT)
        if second.proc is not None:
            second.stop()
