"""The service with its journal on PostgreSQL, end to end over HTTP: a second `dragon
serve` with ``DRAGON_JOURNAL_DSN`` set, so the default run covers both journals without
running the whole suite twice (``--journal=postgres`` does that)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Api, service_env
from tests.support.platforms import Platforms
from tests.support.servers import PostgresServer, Receiver
from tests.support.service import DragonProcess


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, platforms: Platforms, postgres: PostgresServer
) -> Iterator[DragonProcess]:
    env = {**service_env(platforms), "DRAGON_JOURNAL_DSN": postgres.new_database()}
    process = DragonProcess(tmp_path_factory.mktemp("on-postgres") / "data", env)
    process.start()
    yield process
    if process.proc is not None:
        process.stop()


@pytest.fixture(scope="module")
def api(service: DragonProcess) -> Api:
    return Api(service.url, service.cli("accounts", "create", "dana")["secret"])


def _rows(service: DragonProcess, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(service.env["DRAGON_JOURNAL_DSN"]) as conn:
        return conn.execute(query, params).fetchall()


def test_tasks_and_accounts_live_in_postgres_and_nothing_in_the_data_dir(service: DragonProcess, api: Api) -> None:
    [status] = api.create({"task_name": "hello", "name": "pg"}, block=True)
    assert status["result"] == "Hello pg"
    assert _rows(service, "SELECT state FROM tasks WHERE key = %s", status["key"]) == [("success",)]
    assert [a["name"] for a in service.cli("accounts", "list")] == ["dana", "dev"]
    assert not (service.data_dir / "journal.sqlite3").exists()


def test_the_dsn_password_is_in_no_output_log_or_status(service: DragonProcess, api: Api) -> None:
    password = psycopg.conninfo.conninfo_to_dict(service.env["DRAGON_JOURNAL_DSN"])["password"]
    assert isinstance(password, str)
    [status] = api.create({"task_name": "hello", "name": "secretive"}, block=True)
    [detailed] = api.status([status["key"]], details="true")
    assert password not in json.dumps(detailed)
    assert f"Journal: PostgreSQL at 127.0.0.1:{service.env['DRAGON_JOURNAL_DSN'].rsplit(':', 1)[1]}" in service.output
    assert password not in "\n".join(service.output)
    assert password not in (service.data_dir.parent / "serve.log").read_text()


def test_block_status_and_streams(api: Api, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    [waiting] = api.create({"task_name": "test.gate", "gate": str(gate)})
    assert api.status([waiting["key"]])[0]["status"] in ("queued", "executing")
    body = {"secret": api.secret, "tasks": [{"task_name": "test.steps", "steps": 2}]}
    with api.http.stream("POST", "/v2/create_stream", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert [doc["progress"] for doc in lines[1:] if doc.get("result") and doc["status"] == "executing"] == [50, 100]
    assert lines[-1]["status"] == "success" and lines[-1]["result"] == {"steps": 2}
    gate.touch()
    assert api.status([waiting["key"]], block="true")[0]["status"] == "success"


def test_accounts_created_by_the_cli_work_at_once_and_deleted_ones_stop(service: DragonProcess) -> None:
    erin = Api(service.url, service.cli("accounts", "create", "erin")["secret"])
    assert erin.result({"task_name": "hello", "name": "erin"}) == "Hello erin"
    service.cli("accounts", "delete", "erin")
    deadline = time.monotonic() + 15  # the API caches accounts for 5 s
    while time.monotonic() < deadline:
        r = erin.http.post("/v2/create", json={"secret": erin.secret, "tasks": {"task_name": "hello"}})
        if r.status_code == 401:
            break
        time.sleep(0.5)
    assert r.status_code == 401


def test_callbacks_are_delivered(api: Api) -> None:
    receiver = Receiver().start()
    try:
        [task] = api.create({"task_name": "test.fail", "url_errback": f"{receiver.url}/failed"})
        [request] = receiver.wait_for(1)
        assert request["path"] == "/failed" and json.loads(request["body"])["key"] == task["key"]
        deadline = time.monotonic() + 30
        while (callback := api.status([task["key"]], details="true")[0]["details"]["callback"])["state"] != "delivered":
            assert time.monotonic() < deadline, callback
            time.sleep(0.1)
    finally:
        receiver.stop()


def test_concurrent_duplicates_with_one_idempotency_key_create_one_set_of_tasks(api: Api) -> None:
    body = {"secret": api.secret, "tasks": [{"task_name": "hello", "name": f"i{i}"} for i in range(3)]}
    answers: list[list[str]] = []

    def post() -> None:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            answers.append(
                [s["key"] for s in http.post("/v2/create", json=body, headers={"Idempotency-Key": "k"}).json()]
            )

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and all(a == answers[0] for a in answers) and len(answers[0]) == 3


def test_storage_expiration_is_kept_and_enforced(service: DragonProcess, api: Api) -> None:
    [old, new] = api.create([{"task_name": "test.copy", "text": t} for t in ("old", "new")], block=True)
    path = service.data_dir / "files" / old["result"]["output"].split("/storage/", 1)[1]
    three_days_ago = time.time() - 3 * 86400
    os.utime(path, (three_days_ago, three_days_ago))
    assert api.http.post("/v2/storage/expiration", json={"secret": api.secret, "days": 2}).json() == 2
    [(data,)] = _rows(service, "SELECT data FROM accounts WHERE name = 'dana'")
    assert data["storage_expiration_days"] == 2
    deadline = time.monotonic() + 30
    while httpx.get(old["result"]["output"]).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert httpx.get(old["result"]["output"]).status_code == 404
    assert httpx.get(new["result"]["output"]).status_code == 200


def test_restart_keeps_statuses_deliveries_and_settings_and_reruns_unfinished_tasks(
    service: DragonProcess, api: Api, tmp_path: Path
) -> None:
    receiver = Receiver()  # down during the restart
    done = api.create([{"task_name": "hello", "name": f"r{i}"} for i in range(3)], block=True)
    [called] = api.create({"task_name": "hello", "name": "cb", "url_callback": receiver.url}, block=True)
    gate = tmp_path / "gate"
    running = api.create(
        [{"task_name": "test.gate", "gate": str(gate), "url_callback": receiver.url} for _ in range(2)]
    )
    api.wait_for(running[0]["key"], "executing")
    assert api.http.post("/v2/storage/expiration", json={"secret": api.secret, "days": 5}).json() == 5

    service.restart()
    assert api.status([s["key"] for s in done]) == done
    assert api.http.get("/v2/storage/expiration", params={"secret": api.secret}).json() == 5
    receiver.start()
    try:
        [first] = receiver.wait_for(1, timeout=60)
        assert json.loads(first["body"])["key"] == called["key"]
        gate.touch()
        final = api.wait([s["key"] for s in running], timeout=120)
        assert [s["status"] for s in final] == ["success"] * 2
        assert len(receiver.wait_for(3, timeout=60)) == 3
    finally:
        receiver.stop()


def test_while_the_database_is_down_the_api_answers_503_and_nothing_is_lost(
    service: DragonProcess, api: Api, postgres: PostgresServer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    [waiting] = api.create({"task_name": "test.gate", "gate": str(gate)})
    api.wait_for(waiting["key"], "executing")
    [before] = api.create({"task_name": "hello", "name": "before"}, block=True)
    postgres.stop()
    try:
        refused = api.http.post("/v2/create", json={"secret": api.secret, "tasks": {"task_name": "hello", "name": "x"}})
        assert refused.status_code == 503, refused.text
        assert refused.json()["errors"][0]["name"] == "service"
        unknown = api.http.get("/v2/status", params={"tasks": "ABCDEFGHIJKLMNOPQRSTUVWXYA"})  # must ask the journal
        assert unknown.status_code == 503
        gate.touch()  # the task ends while its end cannot be written: it waits to be
        time.sleep(2)
        assert api.status([waiting["key"]])[0]["status"] == "executing"  # nothing shown that is not durable
    finally:
        postgres.start()
    deadline = time.monotonic() + 60
    while api.status([waiting["key"]])[0]["status"] != "success" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.status([waiting["key"]])[0]["status"] == "success"
    assert api.status([before["key"]]) == [before]
    assert api.create({"task_name": "hello", "name": "after"}, block=True)[0]["result"] == "Hello after"
    assert _rows(service, "SELECT state FROM tasks WHERE key = %s", waiting["key"]) == [("success",)]
