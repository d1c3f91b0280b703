"""GET /v2/tasks: an account's task history from the journal, newest first, filtered and
paged, over HTTP; the Python client and `dragon tasks` on top of it."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dragon.client import Client
from tests.conftest import ROOT, Api, DragonProcess


@pytest.fixture(scope="module")
def owner(dragon: DragonProcess) -> dict[str, Any]:
    """An account of its own: its history holds only this module's tasks."""
    return dragon.cli("accounts", "create", "historian", "--referrer", "https://app.example.com/*")


@pytest.fixture(scope="module")
def made(dragon: DragonProcess, owner: dict[str, Any]) -> dict[str, Any]:
    """Six tasks in three requests (hello, a failing task, hello again), all ended."""
    api = Api(dragon.url, owner["secret"])
    before = datetime.now(UTC)
    hellos = api.create([{"task_name": "hello", "name": f"h{i}"} for i in range(2)], block=True)
    time.sleep(0.05)
    middle = datetime.now(UTC)
    failed = api.create(
        [{"task_name": "test.fail", "kind": "task"}, {"task_name": "test.fail", "kind": "task"}], block=True
    )
    more = api.create([{"task_name": "hello", "name": f"m{i}"} for i in range(2)], block=True)
    ended = api.wait([s["key"] for s in hellos + failed + more])
    return {
        "api": api,
        "before": before,
        "middle": middle,
        "hellos": ended[:2],
        "failed": ended[2:4],
        "more": ended[4:],
    }


def _page(api: Api, **query: Any) -> Any:
    return api.http.get("/v2/tasks", params=query, headers={"Authorization": f"Secret {api.secret}"})


def _keys(statuses: list[dict[str, Any]]) -> set[str]:
    return {s["key"] for s in statuses}


def test_the_history_lists_the_accounts_tasks_newest_first_with_their_statuses(made: dict[str, Any]) -> None:
    api = made["api"]
    answer = _page(api)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["cursor"] is None and len(page["tasks"]) == 6
    # newest first: the three requests' tasks come back in reverse order of creation
    groups = [_keys(made["more"]), _keys(made["failed"]), _keys(made["hellos"])]
    assert [_keys(page["tasks"][i : i + 2]) for i in (0, 2, 4)] == groups
    by_key = {s["key"]: s for s in page["tasks"]}
    for status in made["hellos"] + made["failed"] + made["more"]:
        assert by_key[status["key"]] == status  # the same object as /v2/status
    assert all(s["error"].startswith("InvalidContentError: ") for s in made["failed"])


def test_filters_by_state_task_name_and_creation_time(made: dict[str, Any]) -> None:
    api = made["api"]
    assert _keys(_page(api, status="error").json()["tasks"]) == _keys(made["failed"])
    assert _keys(_page(api, status="success", task_name="hello").json()["tasks"]) == _keys(
        made["hellos"] + made["more"]
    )
    assert _keys(_page(api, status=["success", "error"], task_name="test.fail").json()["tasks"]) == _keys(
        made["failed"]
    )
    assert _page(api, status="queued").json()["tasks"] == []
    early = _page(api, to=made["middle"].isoformat()).json()["tasks"]
    assert _keys(early) == _keys(made["hellos"])
    late = _page(api, **{"from": made["middle"].isoformat()}).json()["tasks"]
    assert _keys(late) == _keys(made["failed"] + made["more"])
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert _page(api, **{"from": later}).json()["tasks"] == []


def test_a_cursor_pages_through_every_task_once(made: dict[str, Any]) -> None:
    api, seen, cursor, pages = made["api"], [], None, 0
    while True:
        page = _page(api, limit=4, **({"cursor": cursor} if cursor else {})).json()
        seen += [s["key"] for s in page["tasks"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages == 2 and len(seen) == len(set(seen)) == 6
    assert seen == [s["key"] for s in _page(api).json()["tasks"]]


def test_one_account_never_sees_another_accounts_tasks(made: dict[str, Any], api: Api) -> None:
    api.create({"task_name": "hello", "name": "alice"}, block=True)
    theirs = _keys(_page(api, limit=1000).json()["tasks"])
    assert theirs and not theirs & _keys(made["hellos"] + made["failed"] + made["more"])
    assert _keys(_page(made["api"], limit=1000).json()["tasks"]) == _keys(
        made["hellos"] + made["failed"] + made["more"]
    )


def test_an_api_key_with_its_referrer_reads_the_history_and_no_credentials_are_refused(
    made: dict[str, Any], owner: dict[str, Any]
) -> None:
    http = made["api"].http
    ok = http.get(
        "/v2/tasks",
        params={"api_key": owner["api_key"], "status": "error"},
        headers={"Referer": "https://app.example.com/history"},
    )
    assert ok.status_code == 200 and _keys(ok.json()["tasks"]) == _keys(made["failed"])
    assert (
        http.get(
            "/v2/tasks", params={"api_key": owner["api_key"]}, headers={"Referer": "https://evil.example/"}
        ).status_code
        == 401
    )
    assert http.get("/v2/tasks").status_code == 401


@pytest.mark.parametrize(
    "query, field",
    [
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_malformed_queries_are_refused_with_the_field_at_fault(made: dict[str, Any], query: dict, field: str) -> None:
    answer = _page(made["api"], **query)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["name"] == field


def test_the_python_client_follows_pages_and_filters(made: dict[str, Any], dragon: DragonProcess, owner: dict) -> None:
    with Client(dragon.url, secret=owner["secret"]) as client:
        every = list(client.tasks(page_size=2))
        assert [s.key for s in every] == [s["key"] for s in _page(made["api"]).json()["tasks"]]
        failed = list(client.tasks(status="error", since=timedelta(hours=1)))
        assert {s.key for s in failed} == _keys(made["failed"]) and all(s.status == "error" for s in failed)
        assert {s.key for s in client.tasks(task_name="hello", until=made["middle"])} == _keys(made["hellos"])


def test_the_cli_lists_failed_tasks_of_the_last_hour(made: dict[str, Any], dragon: DragonProcess, owner: dict) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DRAGON_URL": dragon.url, "DRAGON_SECRET": owner["secret"]}
    run = subprocess.run(
        [sys.executable, "-m", "dragon", "tasks", "--status", "error", "--since", "1h", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert _keys(json.loads(run.stdout)) == _keys(made["failed"])
    text = subprocess.run(
        [sys.executable, "-m", "dragon", "tasks", "--limit", "1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    [line] = text.stdout.splitlines()
    assert line.split("\t")[:2] == [max(_keys(made["more"])), "success"]  # one request: one creation time, then keys
    old = subprocess.run(
        [sys.executable, "-m", "dragon", "tasks", "--until", "2h", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(old.stdout) == []


def test_usage_counts_the_accounts_running_and_queued_tasks(dragon: DragonProcess) -> None:
    account = dragon.cli("accounts", "create", "busy-user", "--max-concurrent-tasks", "1")
    api = Api(dragon.url, account["secret"])
    gate = Path(tempfile.gettempdir()) / f"gate-{uuid.uuid4().hex}"

    def usage() -> dict[str, int]:
        return api.http.get("/v2/usage", headers={"Authorization": f"Secret {api.secret}"}).json()

    assert usage() == {"running": 0, "queued": 0}
    keys = [s["key"] for s in api.create([{"task_name": "test.gate", "gate": str(gate)} for _ in range(3)])]
    try:
        deadline = time.monotonic() + 60
        while usage()["running"] == 0 and time.monotonic() < deadline:  # one starts, and says so
            time.sleep(0.1)
        assert usage() == {"running": 1, "queued": 2}
    finally:
        gate.touch()
    api.wait(keys)
    assert usage() == {"running": 0, "queued": 0}
    gate.unlink()
    assert api.http.get("/v2/usage").status_code == 401
