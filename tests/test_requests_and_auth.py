"""Request-level errors (400) and credentials (401), in the spec's error format."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from dragon.status import shard_of
from tests.conftest import Api, DragonProcess


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error"
    [error] = body["errors"]
    assert set(error) == {"name", "location", "description"}
    assert error["location"] in ("body", "querystring", "header", "path")
    return error


def test_missing_tasks_is_the_spec_400(api: Api) -> None:
    error = _error(api.http.post("/v2/create", json={"secret": api.secret}), 400)
    assert error == {"name": "tasks", "location": "body", "description": "tasks is missing"}


@pytest.mark.parametrize(
    "body, name",
    [
        ('{"tasks": [', "body"),
        ("[1, 2]", "body"),
        ('{"tasks": []}', "tasks"),
        ('{"tasks": [42]}', "tasks.0"),
        ('{"tasks": [{"name": "x"}]}', "tasks.0.task_name"),
        ('{"tasks": [{"task_name": "no.such.task"}]}', "tasks.0.task_name"),
        ('{"tasks": {"task_name": "hello", "name": "x"}, "block": "maybe"}', "block"),
    ],
)
def test_malformed_create_requests_are_400(api: Api, body: str, name: str) -> None:
    headers = {"Authorization": f"Secret {api.secret}"}
    error = _error(api.http.post("/v2/create", content=body, headers=headers), 400)
    assert error["name"] == name


@pytest.mark.parametrize(
    "params, name",
    [({}, "tasks"), ({"tasks": "not-a-key"}, "tasks"), ({"tasks": "A" * 26, "block": "perhaps"}, "block")],
)
def test_malformed_status_queries_are_400(api: Api, params: dict, name: str) -> None:
    error = _error(api.http.get("/v2/status", params=params), 400)
    assert error["name"] == name
    assert error["location"] == "querystring"


def test_unknown_task_key_is_400(api: Api) -> None:
    error = _error(api.http.get("/v2/status", params={"tasks": "ABCDEFGHIJKLMNOPQRSTUVWXYA"}), 400)
    assert "there is no task with this ID" in error["description"]
    _error(api.http.get("/v2/status_stream", params={"tasks": "ABCDEFGHIJKLMNOPQRSTUVWXYA"}), 400)


def test_unknown_route_answers_in_the_error_format(api: Api) -> None:
    _error(api.http.get("/v2/nothing-here"), 404)


def test_oversized_body_is_refused(api: Api) -> None:
    body = b'{"tasks": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    _error(api.http.post("/v2/create", content=body), 400)


HELLO = {"task_name": "hello", "name": "auth"}


def test_secret_in_body_or_authorization_header(api: Api) -> None:
    assert api.http.post("/v2/create", json={"secret": api.secret, "tasks": HELLO}).status_code == 200
    r = api.http.post("/v2/create", json={"tasks": HELLO}, headers={"Authorization": f"Secret {api.secret}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body, headers",
    [
        ({"tasks": HELLO}, {}),
        ({"tasks": HELLO, "secret": "WRONGWRONGWRONGWRONGWRONG2"}, {}),
        ({"tasks": HELLO, "secret": 12345}, {}),
        ({"tasks": HELLO}, {"Authorization": "Secret nope"}),
        ({"tasks": HELLO}, {"Authorization": "Bearer something"}),
    ],
)
def test_missing_or_invalid_credentials_are_401(api: Api, body: dict, headers: dict) -> None:
    _error(api.http.post("/v2/create", json=body, headers=headers), 401)


def test_api_key_needs_a_whitelisted_referrer(api: Api, account: dict) -> None:
    key = account["api_key"]
    ok = api.http.post(
        "/v2/create", json={"api_key": key, "tasks": HELLO}, headers={"Referer": "https://app.example.com/page"}
    )
    assert ok.status_code == 200
    by_header = api.http.post(
        "/v2/create",
        json={"tasks": HELLO},
        headers={"Authorization": f"Api-Key {key}", "Referer": "https://app.example.com/"},
    )
    assert by_header.status_code == 200
    _error(api.http.post("/v2/create", json={"api_key": key, "tasks": HELLO}), 401)
    evil = api.http.post(
        "/v2/create", json={"api_key": key, "tasks": HELLO}, headers={"Referer": "https://evil.example.org/"}
    )
    assert _error(evil, 401)["location"] == "header"
    _error(
        api.http.post(
            "/v2/create", json={"api_key": "nope", "tasks": HELLO}, headers={"Referer": "https://app.example.com/"}
        ),
        401,
    )


def test_queued_task_limit_answers_401_account_limits_reached(dragon: DragonProcess, tmp_path) -> None:
    tiny = dragon.cli("accounts", "create", "tiny", "--max-queued-tasks", "2", "--max-concurrent-tasks", "1")
    api = Api(dragon.url, tiny["secret"])
    gate = tmp_path / "gate"
    held = api.create([{"task_name": "test.gate", "gate": str(gate)}] * 2)
    r = api.http.post("/v2/create", json={"secret": api.secret, "tasks": HELLO})
    assert _error(r, 401)["description"] == "account limits reached"
    # One runs, the other waits for the concurrency slot.
    api.wait_for(held[0]["key"], "executing")
    assert api.status([held[1]["key"]])[0]["status"] == "queued"
    gate.touch()
    assert [s["status"] for s in api.wait([h["key"] for h in held])] == ["success", "success"]
    assert api.create(HELLO, block=True)[0]["status"] == "success"


def test_an_accounts_limits_hold_across_shards(dragon: DragonProcess, tmp_path) -> None:
    """Requests go to the shards in turn (the suite runs two): the limits are the
    account's, not each shard's."""
    spread = dragon.cli("accounts", "create", "spread", "--max-queued-tasks", "6", "--max-concurrent-tasks", "2")
    api = Api(dragon.url, spread["secret"])
    gate = tmp_path / "gate"
    keys = [s["key"] for _ in range(3) for s in api.create([{"task_name": "test.gate", "gate": str(gate)}] * 2)]
    assert {shard_of(k, 2) for k in keys} == {0, 1}
    r = api.http.post("/v2/create", json={"secret": api.secret, "tasks": HELLO})
    assert _error(r, 401)["description"] == "account limits reached"

    def running() -> int:
        return sum(s["status"] == "executing" for s in api.status(keys))

    deadline = time.monotonic() + 30
    while running() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(20):  # two run, whichever shard owns them; the other four wait
        assert running() == 2
        time.sleep(0.05)
    gate.touch()
    assert [s["status"] for s in api.wait(keys)] == ["success"] * 6
    assert len(api.create([HELLO] * 6)) == 6  # every slot is free again


def test_deleted_account_cannot_create(dragon: DragonProcess) -> None:
    gone = dragon.cli("accounts", "create", "gone")
    api = Api(dragon.url, gone["secret"])
    assert api.create(HELLO, block=True)[0]["status"] == "success"
    assert dragon.cli("accounts", "delete", "gone") == {"deleted": "gone"}
    names = [a["name"] for a in dragon.cli("accounts", "list")]
    assert "gone" not in names and "alice" in names

    time.sleep(5.5)  # the API caches accounts for 5 s
    _error(api.http.post("/v2/create", json={"secret": gone["secret"], "tasks": HELLO}), 401)


def test_account_listing_never_shows_credentials(dragon: DragonProcess, account: dict) -> None:
    listing = str(dragon.cli("accounts", "list"))
    assert account["secret"] not in listing and account["api_key"] not in listing


# The request shapes public clients of the original service send (docs/api.md, "Clients")


def test_a_bare_secret_or_any_case_of_the_scheme_in_the_authorization_header(api: Api) -> None:
    for header in (api.secret, f"SECRET {api.secret}", f"secret {api.secret}"):
        r = api.http.post("/v2/create", content=json.dumps({"tasks": HELLO}), headers={"Authorization": header})
        assert r.status_code == 200, (header, r.text)


def test_paths_with_doubled_slashes_reach_their_routes(api: Api) -> None:
    """A base URL ending in "/" joined with "/v2/create"."""
    headers = {"Authorization": api.secret}
    [created] = api.http.post(
        api.url + "//v2/create", content=json.dumps({"tasks": HELLO, "block": True}), headers=headers
    ).json()
    [status] = api.http.get(api.url + "//v2/status", params={"tasks": created["key"]}, headers=headers).json()
    assert status["status"] == "success" and status["result"] == "Hello auth"


def test_v1_routes_answer_as_v2_with_an_errors_details_also_in_result(api: Api) -> None:
    body = {"secret": api.secret, "tasks": [{"task_name": "test.fail"}], "block": True}
    [failed] = api.http.post(api.url + "//v1/create", content=json.dumps(body)).json()
    assert (
        failed["status"] == "error"
        and failed["result"] == failed["error"]
        and failed["error"].startswith("InvalidContentError")
    )
    [again] = api.http.post("/v1/status", content=json.dumps({"secret": api.secret, "tasks": failed["key"]})).json()
    assert again["result"] == failed["error"]
    [v2] = api.status([failed["key"]])
    assert "result" not in v2


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/json; charset=utf-8",
    ],
)
def test_json_bodies_are_read_whatever_their_content_type(api: Api, content_type: str | None) -> None:
    body = (
        json.dumps(
            {"secret": api.secret, "tasks": {"task_name": "hello", "name": "\u003cform\u003e"}, "block": True},
            ensure_ascii=True,
        )
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
    )  # as Gson escapes them
    headers = {"Content-Type": content_type} if content_type else {}
    [status] = api.http.post("/v2/create", content=body, headers=headers).json()
    assert status["result"] == "Hello <form>"


def test_a_status_get_with_an_empty_json_body_and_header_credentials(api: Api) -> None:
    [created] = api.create(HELLO, block=True)
    r = api.http.request(
        "GET",
        "/v2/status",
        params={"tasks": created["key"]},
        content=b"{}",
        headers={"Authorization": f"Secret {api.secret}", "Content-Length": "2"},
    )
    assert r.status_code == 200 and r.json()[0]["status"] == "success"
