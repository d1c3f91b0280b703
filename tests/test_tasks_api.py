"""The Tasks API methods of the spec, end to end over HTTP."""

from __future__ import annotations

import json
import re

import httpx

from tests.conftest import Api

EVENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
KEY = re.compile(r"^[A-Z2-7]{25}[AEIMQUY4]$")


def test_hello_task_blocks_until_its_result(api: Api) -> None:
    [status] = api.create({"task_name": "hello", "name": "John"}, block=True)
    assert status["status"] == "success"
    assert status["result"] == "Hello John"
    assert KEY.match(status["key"])
    assert set(status["events"]) == {"queued", "started", "completed"}
    assert all(EVENT.match(v) for v in status["events"].values())
    assert status["progress"] is None
    assert "error" not in status


def test_create_returns_queued_statuses_in_request_order(api: Api) -> None:
    names = [f"n{i}" for i in range(20)]
    statuses = api.create([{"task_name": "hello", "name": n} for n in names])
    assert [s["status"] for s in statuses] == ["queued"] * 20
    assert all(set(s["events"]) == {"queued"} for s in statuses)
    assert len({s["key"] for s in statuses}) == 20
    final = api.wait([s["key"] for s in statuses])
    assert [s["result"] for s in final] == [f"Hello {n}" for n in names]


def test_single_task_object_is_accepted_and_answered_with_a_list(api: Api) -> None:
    statuses = api.create({"task_name": "hello", "name": "solo"})
    assert isinstance(statuses, list) and len(statuses) == 1


def test_body_is_json_whatever_the_content_type(api: Api) -> None:
    body = json.dumps({"secret": api.secret, "tasks": {"task_name": "hello", "name": "x"}, "block": True})
    r = api.http.post("/v2/create", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    assert r.json()[0]["result"] == "Hello x"


def test_parameter_validation_errors_end_the_task_with_field_messages(api: Api) -> None:
    [bad, good] = api.create([{"task_name": "hello"}, {"task_name": "hello", "name": "ok"}], block=True)
    assert bad["status"] == "error"
    assert bad["error"] == {"parameters": {"name": ["this field is required"]}}
    assert set(bad["events"]) >= {"queued", "completed"}
    assert good["status"] == "success"


def test_wrongly_typed_parameter_is_a_validation_error(api: Api) -> None:
    [status] = api.create({"task_name": "test.steps", "steps": "many"}, block=True)
    assert status["status"] == "error"
    assert list(status["error"]["parameters"]) == ["steps"]


def test_unknown_task_keys_are_kept_out_of_parameters(api: Api) -> None:
    [status] = api.create({"task_name": "hello", "name": "meta", "task_metas": {"id": 7}}, block=True)
    assert status["result"] == "Hello meta"
    [detailed] = api.status([status["key"]], details="true")
    assert "task_metas" not in detailed["details"]["parameters"]
    assert detailed["details"]["extra"] == {"task_metas": {"id": 7}}


def test_task_errors_start_with_the_error_class_name(api: Api) -> None:
    [content, bug] = api.create(
        [{"task_name": "test.fail", "kind": "task"}, {"task_name": "test.fail", "kind": "bug"}], block=True
    )
    assert content["status"] == "error"
    assert content["error"] == "InvalidContentError: this content is not acceptable"
    assert bug["error"].startswith("InternalError: ")
    assert "hunter2" not in bug["error"]


def test_status_accepts_repeated_and_single_keys_by_get_and_post(api: Api) -> None:
    keys = [
        s["key"]
        for s in api.create([{"task_name": "hello", "name": "a"}, {"task_name": "hello", "name": "b"}], block=True)
    ]
    by_get = api.http.get("/v2/status", params={"tasks": keys}).json()
    by_post = api.http.post("/v2/status", json={"tasks": keys}).json()
    single = api.http.post("/v2/status", json={"tasks": keys[1]}).json()
    assert [s["key"] for s in by_get] == keys
    assert by_get == by_post
    assert single == [by_get[1]]


def test_status_block_waits_for_the_end(api: Api, tmp_path) -> None:
    gate = tmp_path / "open"
    [queued] = api.create({"task_name": "test.gate", "gate": str(gate)})
    [executing] = api.status([queued["key"]])
    assert executing["status"] in ("queued", "executing")
    gate.touch()
    [done] = api.status([queued["key"]], block="true")
    assert done["status"] == "success"


def test_block_returns_current_statuses_when_the_server_cap_passes(api: Api, tmp_path) -> None:
    # The test service caps block at 8 s (DRAGON_BLOCK_TIMEOUT).
    [status] = api.create({"task_name": "test.gate", "gate": str(tmp_path / "never"), "timeout": 30}, block=True)
    assert status["status"] == "executing"
    (tmp_path / "never").touch()


def test_details_show_parameters_store_and_attempts_but_no_secrets(api: Api) -> None:
    [status] = api.create(
        {"task_name": "hello", "name": "d", "task_store": {"type": "volatile"}, "access_token": "tok-123"}, block=True
    )
    [detailed] = api.status([status["key"]], details="true")
    details = detailed["details"]
    assert details["task_name"] == "hello"
    assert details["parameters"]["name"] == "d"
    assert details["task_store"] == {"type": "volatile"}
    assert details["attempts"] == 1
    assert "tok-123" not in json.dumps(detailed)
    [plain] = api.status([status["key"]])
    assert "details" not in plain


def _lines(response: httpx.Response) -> list:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_create_stream_sends_initial_list_then_every_change_until_all_end(api: Api) -> None:
    body = {
        "secret": api.secret,
        "tasks": [{"task_name": "test.steps", "steps": 3}, {"task_name": "hello", "name": "Jane"}],
    }
    with api.http.stream("POST", "/v2/create_stream", json=body) as r:
        assert r.status_code == 200
        raw = [line for line in r.iter_lines() if line]
    assert all("\n" not in line for line in raw)
    lines = [json.loads(line) for line in raw]
    first, rest = lines[0], lines[1:]
    assert isinstance(first, list) and len(first) == 2
    steps_key, hello_key = first[0]["key"], first[1]["key"]
    assert all(isinstance(doc, dict) for doc in rest)
    steps = [doc for doc in rest if doc["key"] == steps_key]
    assert [doc["status"] for doc in steps][-1] == "success"
    assert steps[-1]["result"] == {"steps": 3}
    partial = [doc for doc in steps if doc["status"] == "executing" and doc.get("result")]
    assert [doc["progress"] for doc in partial] == [33, 67, 100]
    assert partial[-1]["result"] == {"step1": 1, "step2": 2, "step3": 3}
    hello = [doc for doc in rest if doc["key"] == hello_key]
    # A tiny task may have ended before the first line was read: then that line holds its
    # end and it has no later line (docs/api.md, "Waiting and streams").
    assert (hello or [first[1]])[-1]["result"] == "Hello Jane"
    assert not (hello and first[1]["status"] == "success")
    # One line per change: nothing repeated, and nothing after a task's end.
    for docs in (steps, hello):
        assert len({json.dumps(d, sort_keys=True) for d in docs}) == len(docs)
        assert [d["status"] for d in docs].count("success") == (1 if docs else 0)


def test_status_stream_and_its_alias_follow_existing_tasks(api: Api, tmp_path) -> None:
    gate = tmp_path / "go"
    keys = [
        s["key"]
        for s in api.create([{"task_name": "test.gate", "gate": str(gate)}, {"task_name": "hello", "name": "z"}])
    ]
    api.wait_for(keys[0], "executing")
    with api.http.stream("GET", "/v2/stream", params={"tasks": keys}) as r:
        lines = r.iter_lines()
        first = json.loads(next(lines))
        assert [s["key"] for s in first] == keys
        gate.touch()
        rest = [json.loads(line) for line in lines if line]
    ended = {doc["key"]: doc["status"] for doc in rest if doc["status"] in ("success", "error")}
    assert ended.get(keys[0]) == "success"
    assert first[1]["status"] == "success" or ended.get(keys[1]) == "success"
    by_post = api.http.post("/v2/status_stream", json={"tasks": keys})
    assert _lines(by_post) == [api.status(keys)]


def test_stream_of_ended_tasks_is_one_line(api: Api) -> None:
    keys = [s["key"] for s in api.create({"task_name": "hello", "name": "x"}, block=True)]
    r = api.http.get("/v2/status_stream", params={"tasks": keys})
    assert r.headers["content-type"].startswith("application/x-json-stream")
    assert _lines(r) == [api.status(keys)]


def test_health_answers_once_tasks_are_accepted(api: Api) -> None:
    r = api.http.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
