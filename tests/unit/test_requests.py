"""Request shapes (dragon/protocol.py) and the spec's error bodies (dragon/serve/errors.py),
without Ray or a server: what the lenient parsing accepts, what it refuses, and how."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from dragon.errors import AccountLimitError, CredentialsError, InvalidRequestError, UnavailableError, UnknownTaskError
from dragon.protocol import CreateRequest, DeleteFilesRequest, ExpirationRequest, StatusRequest, parse
from dragon.serve.errors import install
from dragon.status import new_key

KEY = new_key()


def _refusal(model: type, data: Any) -> tuple[str, str]:
    with pytest.raises(InvalidRequestError) as caught:
        parse(model, data)
    return caught.value.field, caught.value.description


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("yes", True),
        ("OFF", False),
        (" true ", True),
        ("", False),
    ],
)
def test_booleans_are_read_as_the_clients_send_them(value: Any, expected: bool) -> None:
    assert parse(StatusRequest, {"tasks": KEY, "block": value}).block is expected


@pytest.mark.parametrize("value", [2, "maybe", [True], {"a": 1}])
def test_a_boolean_that_is_none_of_those_is_refused_by_name(value: Any) -> None:
    assert _refusal(StatusRequest, {"tasks": KEY, "details": value}) == ("details", "details must be a boolean")


def test_one_definition_or_one_key_is_a_list_of_one() -> None:
    assert parse(CreateRequest, {"tasks": {"task_name": "hello"}}).tasks == [{"task_name": "hello"}]
    assert parse(StatusRequest, {"tasks": KEY}).tasks == [KEY]


@pytest.mark.parametrize(
    "model, body",
    [
        (CreateRequest, {}),
        (CreateRequest, {"tasks": None}),
        (StatusRequest, {}),
        (StatusRequest, {"tasks": []}),
        (StatusRequest, {"tasks": ""}),
    ],
)
def test_missing_tasks_is_the_spec_refusal(model: type, body: dict) -> None:
    assert _refusal(model, body) == ("tasks", "tasks is missing")


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert _refusal(CreateRequest, [{"task_name": "hello"}]) == ("body", "the body must be a JSON object")


def test_a_malformed_key_is_refused_and_quoted_short() -> None:
    field, description = _refusal(StatusRequest, {"tasks": [KEY, "x" * 500]})
    assert field == "tasks" and description.startswith("'xxx") and len(description) < 100


def test_dates_without_a_timezone_are_utc_and_from_is_named_as_on_the_wire() -> None:
    selection = parse(DeleteFilesRequest, {"from": "2013-10-28T20:22:21", "to": "2013-10-29T00:00:00Z"})
    assert selection.from_ == datetime(2013, 10, 28, 20, 22, 21, tzinfo=UTC)
    assert selection.to == datetime(2013, 10, 29, tzinfo=UTC)
    assert _refusal(DeleteFilesRequest, {"from": "yesterday"}) == ("from", "from must be an ISO 8601 date")


def test_an_empty_list_of_urls_is_a_selection_of_nothing_not_no_selection() -> None:
    assert parse(DeleteFilesRequest, {"urls": []}).urls == []
    assert parse(DeleteFilesRequest, {}).urls is None
    assert _refusal(DeleteFilesRequest, {"urls": "http://x/y"}) == ("urls", "urls must be a list of URLs")
    assert _refusal(DeleteFilesRequest, {"max_age": -1}) == ("max_age", "max_age must be at least 0")


@pytest.mark.parametrize("days", [-1, 36_501, 1.5, True, "3"])
def test_an_expiration_outside_whole_days_up_to_a_century_is_refused(days: Any) -> None:
    field, description = _refusal(ExpirationRequest, {"days": days})
    assert field == "days" and "integer from 0" in description


def _app() -> TestClient:
    app = FastAPI()
    install(app)
    errors = {
        "invalid": InvalidRequestError("tasks", "tasks is missing"),
        "idempotency": InvalidRequestError("Idempotency-Key", "this key was used for a different request"),
        "unknown": UnknownTaskError(KEY),
        "credentials": CredentialsError("secret", "invalid credentials"),
        "limits": AccountLimitError("tasks", "account limits reached"),
        "unavailable": UnavailableError("service", "the journal cannot be reached"),
    }

    @app.api_route("/{kind}", methods=["GET", "POST"])
    async def refuse(kind: str, request: Request) -> None:
        if kind == "crash":
            raise RuntimeError("a bug, with /srv/secret/paths in it")
        raise errors[kind]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "kind, method, status, location",
    [
        ("invalid", "POST", 400, "body"),
        ("invalid", "GET", 400, "querystring"),
        ("idempotency", "POST", 400, "header"),
        ("unknown", "GET", 400, "querystring"),
        ("credentials", "POST", 401, "body"),
        ("limits", "POST", 401, "body"),
        ("unavailable", "POST", 503, "body"),
    ],
)
def test_each_refusal_has_its_status_and_the_location_of_the_field_at_fault(
    kind: str, method: str, status: int, location: str
) -> None:
    answer = _app().request(method, f"/{kind}")
    assert answer.status_code == status
    body = answer.json()
    assert body["status"] == "error" and len(body["errors"]) == 1
    assert set(body["errors"][0]) == {"name", "location", "description"}
    assert body["errors"][0]["location"] == location
    assert ("retry-after" in answer.headers) == (status == 503)


def test_an_unknown_key_is_named_in_the_originals_words() -> None:
    assert _app().get("/unknown").json()["errors"][0]["description"] == f"there is no task with this ID: {KEY}"


def test_an_unexpected_error_is_a_500_that_tells_nothing_of_the_server() -> None:
    answer = _app().post("/crash")
    assert answer.status_code == 500 and "/srv" not in answer.text
    assert answer.json()["errors"][0]["description"] == "internal error"
