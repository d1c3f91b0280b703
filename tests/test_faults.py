"""Nothing is lost: dead workers, a dead API replica, and a service restart."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import Api, DragonProcess


def _wait_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise TimeoutError(path)


def test_worker_killed_mid_task_is_retried_and_succeeds(api: Api, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    [task] = api.create(
        {
            "task_name": "test.gate",
            "pid_file": str(pid_file),
            "gate": str(tmp_path / "never"),
            "first_attempt_only": True,
        }
    )
    pid, attempt = _wait_file(pid_file).split()
    assert attempt == "1"
    os.kill(int(pid), signal.SIGKILL)
    [status] = api.wait([task["key"]])
    assert status["status"] == "success"
    assert status["result"]["attempt"] == 2
    assert status["result"]["pid"] != int(pid)
    assert api.status([task["key"]], details="true")[0]["details"]["attempts"] == 2


def test_a_retried_task_leaves_no_orphaned_output(api: Api, tmp_path: Path) -> None:
    """The first attempt stores a file, then its worker dies: only the second's remains."""
    pid_file = tmp_path / "pid"
    [task] = api.create(
        {
            "task_name": "test.gate",
            "pid_file": str(pid_file),
            "gate": str(tmp_path / "never"),
            "first_attempt_only": True,
            "store": True,
        }
    )
    pid, _ = _wait_file(pid_file).split()
    os.kill(int(pid), signal.SIGKILL)
    [status] = api.wait([task["key"]])
    assert status["status"] == "success" and status["result"]["attempt"] == 2
    listing = api.http.get(f"/v2/storage/files/{task['key']}/", params={"secret": api.secret}).json()
    assert [f["name"] for f in listing["files"]] == [status["result"]["output"].rsplit("/", 1)[1]]
    assert httpx.get(status["result"]["output"]).text == "attempt 2"


def test_worker_dying_on_every_attempt_ends_in_a_clear_error(api: Api) -> None:
    # Three worker processes started and killed: on a loaded machine that can take longer
    # than one blocking call (8 s in the tests), so the test waits on as a client would.
    [task] = api.create({"task_name": "test.gate", "crash": True}, block=True)
    [status] = api.wait([task["key"]])
    assert status["status"] == "error"
    assert status["error"].startswith("WorkerCrashedError: ")
    assert "3 attempts" in status["error"]


def test_api_replica_killed_mid_task_loses_nothing(dragon: DragonProcess, api: Api, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    [task] = api.create({"task_name": "test.gate", "gate": str(gate)})
    api.wait_for(task["key"], "executing")
    replicas = dragon.pids("ServeReplica:dragon:Api")
    assert replicas
    for pid in replicas:
        os.kill(pid, signal.SIGKILL)
    gate.touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # Serve brings a new replica up
        try:
            statuses = api.http.get("/v2/status", params={"tasks": task["key"], "block": "true"})
            if statuses.status_code == 200 and statuses.json()[0]["status"] == "success":
                break
        except Exception:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("the task did not end after the replica restart")
    assert api.create({"task_name": "hello", "name": "again"}, block=True)[0]["result"] == "Hello again"


def test_restart_keeps_ended_statuses_and_reruns_unfinished_tasks(
    dragon: DragonProcess, api: Api, tmp_path: Path
) -> None:
    assert any(line.startswith("Created the development account 'dev'") for line in dragon.output)
    done = api.create([{"task_name": "hello", "name": f"r{i}"} for i in range(5)], block=True)
    gate = tmp_path / "gate"
    running = api.create([{"task_name": "test.gate", "gate": str(gate)} for _ in range(3)])
    queued_limit = api.create({"task_name": "test.steps", "steps": 2})
    api.wait_for(running[0]["key"], "executing")

    lines_before = len(dragon.output)
    dragon.restart()
    assert not any("development account" in line for line in dragon.output[lines_before:])

    ended_keys = [s["key"] for s in done]
    assert api.status(ended_keys) == done
    gate.touch()
    keys = [s["key"] for s in running + queued_limit]
    final = api.wait(keys, timeout=120)
    assert [s["status"] for s in final] == ["success"] * 4
    assert api.create({"task_name": "hello", "name": "after"}, block=True)[0]["result"] == "Hello after"
