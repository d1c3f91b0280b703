"""Callbacks and errbacks that arrive, cancellation, and idempotent create."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from dragon.client import verify
from tests.conftest import Api, DragonProcess
from tests.support.servers import Receiver


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def _verify(secret: str, request: dict) -> bool:
    """What a receiver does: HMAC-SHA256 over '<timestamp>.<body>' keyed by sha256(secret)."""
    key = hashlib.sha256(secret.encode()).hexdigest().encode()
    timestamp = request["headers"]["X-Dragon-Timestamp"]
    expected = "v1=" + hmac.new(key, timestamp.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["X-Dragon-Signature"])


def _details(api: Api, key: str) -> dict:
    return api.status([key], details="true")[0]["details"]


def _wait_delivery(api: Api, key: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        callback = _details(api, key)["callback"]
        if callback and callback["state"] == state:
            return callback
        time.sleep(0.1)
    raise AssertionError(f"delivery of {key} never became {state}: {_details(api, key)['callback']}")


def test_callback_posts_the_final_status_signed(api: Api, receiver: Receiver) -> None:
    [task] = api.create(
        {
            "task_name": "hello",
            "name": "cb",
            "url_callback": f"{receiver.url}/done",
            "url_errback": f"{receiver.url}/failed",
        }
    )
    [request] = receiver.wait_for(1)
    assert request["path"] == "/done"
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert body == api.status([task["key"]])[0]
    assert body["status"] == "success" and body["result"] == "Hello cb"
    assert _verify(api.secret, request)
    assert not _verify("another secret", request)
    callback = _wait_delivery(api, task["key"], "delivered")
    assert callback["id"] == request["headers"]["X-Dragon-Delivery"]
    assert [a["http_status"] for a in callback["attempts"]] == [200]
    time.sleep(0.5)
    assert len(receiver.received) == 1


def test_callbacks_carry_standard_webhooks_signatures(api: Api, account: dict, receiver: Receiver) -> None:
    [task] = api.create({"task_name": "hello", "name": "std", "url_callback": receiver.url})
    [request] = receiver.wait_for(1)
    headers = request["headers"]
    assert Webhook(account["webhook_secret"]).verify(request["body"], headers)["result"] == "Hello std"
    assert verify(account["webhook_secret"], headers, request["body"]).key == task["key"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(request["body"], headers)
    assert headers["webhook-id"] == headers["X-Dragon-Delivery"]
    assert _verify(api.secret, request)  # receivers of the Dragon headers keep working
    callback = _wait_delivery(api, task["key"], "delivered")
    assert "whsec_" not in json.dumps(_details(api, task["key"]))
    assert callback["id"] == headers["webhook-id"]


def test_a_rotated_webhook_secret_and_the_previous_one_both_verify_during_the_grace_period(
    dragon: DragonProcess, receiver: Receiver
) -> None:
    created = dragon.cli("accounts", "create", "rotor")
    api = Api(dragon.url, created["secret"])
    first = created["webhook_secret"]
    rotated = dragon.cli("accounts", "rotate-webhook-secret", "rotor", "--grace", "3600")
    assert rotated["webhook_secret"] != first and rotated["previous_valid_until"] > time.time() + 3000
    api.create({"task_name": "hello", "name": "both", "url_callback": receiver.url})
    [during] = receiver.wait_for(1)
    for secret in (first, rotated["webhook_secret"]):
        assert Webhook(secret).verify(during["body"], during["headers"])["status"] == "success"

    latest = dragon.cli("accounts", "rotate-webhook-secret", "rotor", "--grace", "0")
    api.create({"task_name": "hello", "name": "after", "url_callback": receiver.url})
    after = receiver.wait_for(2)[1]
    assert Webhook(latest["webhook_secret"]).verify(after["body"], after["headers"])["result"] == "Hello after"
    for expired in (first, rotated["webhook_secret"]):
        with pytest.raises(WebhookVerificationError):
            Webhook(expired).verify(after["body"], after["headers"])
    listed = dragon.cli("accounts", "list")
    assert "whsec_" not in json.dumps(listed)
    assert next(a for a in listed if a["name"] == "rotor")["has_webhook_secret"] is True


def test_a_receivers_retry_after_is_honoured(api: Api, receiver: Receiver) -> None:
    receiver.answers = [(503, {"Retry-After": "3"})]  # the tests' back-off is at most 1 s
    [task] = api.create({"task_name": "hello", "name": "later", "url_callback": receiver.url})
    callback = _wait_delivery(api, task["key"], "delivered")
    first, second = receiver.received
    assert second["at"] - first["at"] >= 3
    assert callback["attempts"][0]["retry_after"] == 3


def test_errback_posts_the_error_status(api: Api, receiver: Receiver) -> None:
    api.create(
        [
            {"task_name": "test.fail", "url_callback": f"{receiver.url}/done", "url_errback": f"{receiver.url}/failed"},
            {"task_name": "hello", "url_errback": f"{receiver.url}/invalid"},  # validation error: errback too
        ]
    )
    requests = receiver.wait_for(2)
    by_path = {r["path"]: json.loads(r["body"]) for r in requests}
    assert set(by_path) == {"/failed", "/invalid"}
    assert by_path["/failed"]["error"].startswith("InvalidContentError: ")
    assert by_path["/invalid"]["error"] == {"parameters": {"name": ["this field is required"]}}


def test_deliveries_are_retried_after_server_errors(api: Api, receiver: Receiver) -> None:
    receiver.answers = [500, 503, 429]
    [task] = api.create({"task_name": "hello", "name": "retry", "url_callback": receiver.url})
    callback = _wait_delivery(api, task["key"], "delivered")
    assert [a.get("http_status") for a in callback["attempts"]] == [500, 503, 429, 200]
    assert len({r["headers"]["X-Dragon-Delivery"] for r in receiver.received}) == 1


def test_client_errors_are_final(api: Api, receiver: Receiver) -> None:
    receiver.answers = [404]
    [task] = api.create({"task_name": "hello", "name": "gone", "url_callback": receiver.url})
    callback = _wait_delivery(api, task["key"], "failed")
    assert [a["http_status"] for a in callback["attempts"]] == [404]


def test_a_receiver_that_is_down_gets_the_callback_when_back(api: Api) -> None:
    receiver = Receiver()  # not listening yet
    [task] = api.create({"task_name": "hello", "name": "later", "url_callback": receiver.url})
    time.sleep(2)
    assert len(_details(api, task["key"])["callback"]["attempts"]) >= 1
    receiver.start()
    try:
        assert json.loads(receiver.wait_for(1)[0]["body"])["key"] == task["key"]
    finally:
        receiver.stop()


def test_callbacks_to_private_addresses_are_refused(guarded: Api, receiver: Receiver) -> None:
    [task] = guarded.create({"task_name": "hello", "name": "ssrf", "url_callback": receiver.url})
    callback = _wait_delivery(guarded, task["key"], "failed")
    assert "not allowed" in callback["attempts"][0]["error"]
    assert receiver.received == []


def test_callback_urls_must_be_http(api: Api) -> None:
    [status] = api.create({"task_name": "hello", "name": "x", "url_callback": "file:///etc/passwd"}, block=True)
    assert list(status["error"]["parameters"]) == ["url_callback"]


def test_pending_deliveries_survive_a_restart(dragon: DragonProcess, api: Api, tmp_path: Path) -> None:
    receiver = Receiver()  # down during the restart
    gate = tmp_path / "gate"
    [ended] = api.create({"task_name": "hello", "name": "before", "url_callback": receiver.url}, block=True)
    [running] = api.create({"task_name": "test.gate", "gate": str(gate), "url_callback": receiver.url})
    api.wait_for(running["key"], "executing")
    dragon.restart()
    receiver.start()
    try:
        [first] = receiver.wait_for(1)
        assert json.loads(first["body"])["key"] == ended["key"]
        time.sleep(1)
        assert len(receiver.received) == 1  # nothing for the task that has not ended
        gate.touch()
        requests = receiver.wait_for(2, timeout=60)
        assert json.loads(requests[1]["body"])["key"] == running["key"]
        assert json.loads(requests[1]["body"])["status"] == "success"
    finally:
        receiver.stop()


# cancellation


def _cancel(api: Api, keys: list[str]) -> httpx.Response:
    return api.http.post("/v2/cancel", json={"secret": api.secret, "tasks": keys})


def test_cancel_an_executing_task_stops_it_and_fires_the_errback(api: Api, receiver: Receiver, tmp_path: Path) -> None:
    gate, pid_file = tmp_path / "gate", tmp_path / "pid"
    [task] = api.create(
        {"task_name": "test.gate", "gate": str(gate), "pid_file": str(pid_file), "url_errback": receiver.url}
    )
    api.wait_for(task["key"], "executing")
    r = _cancel(api, [task["key"]])
    assert r.status_code == 200
    assert r.json()["canceled"] == [task["key"]] and r.json()["already_ended"] == []
    [status] = r.json()["statuses"]
    assert status["status"] == "error" and status["error"].startswith("CanceledError: ")
    assert json.loads(receiver.wait_for(1)[0]["body"])["error"].startswith("CanceledError: ")
    gate.touch()
    time.sleep(1)
    assert api.status([task["key"]])[0]["status"] == "error"
    # The worker is free again: new work runs.
    assert api.create({"task_name": "hello", "name": "next"}, block=True)[0]["status"] == "success"


def test_cancel_a_queued_task_and_an_ended_one(dragon: DragonProcess, tmp_path: Path) -> None:
    slow = dragon.cli("accounts", "create", "slowpoke", "--max-concurrent-tasks", "1")
    api = Api(dragon.url, slow["secret"])
    gate = tmp_path / "gate"
    [running, queued] = api.create([{"task_name": "test.gate", "gate": str(gate)}, {"task_name": "hello", "name": "q"}])
    api.wait_for(running["key"], "executing")
    assert api.status([queued["key"]])[0]["status"] == "queued"
    [done] = api.create({"task_name": "hello", "name": "done"})
    r = _cancel(api, [queued["key"]])
    assert r.json()["canceled"] == [queued["key"]]
    gate.touch()
    assert api.wait([running["key"]])[0]["status"] == "success"
    final = api.wait([done["key"]])[0]
    again = _cancel(api, [done["key"], queued["key"]]).json()
    assert again["canceled"] == [] and again["already_ended"] == [done["key"], queued["key"]]
    assert again["statuses"][0] == final


def test_cancel_refuses_other_accounts_tasks(dragon: DragonProcess, api: Api, tmp_path: Path) -> None:
    other = Api(dragon.url, dragon.cli("accounts", "create", "mallory")["secret"])
    [task] = api.create({"task_name": "test.gate", "gate": str(tmp_path / "gate")})
    r = _cancel(other, [task["key"]])
    assert r.status_code == 400
    assert api.status([task["key"]])[0]["status"] in ("queued", "executing")
    (tmp_path / "gate").touch()


# idempotent create


def test_same_idempotency_key_returns_the_first_tasks(api: Api) -> None:
    body = {"secret": api.secret, "tasks": [{"task_name": "hello", "name": "once"}]}
    first = api.http.post("/v2/create", json=body, headers={"Idempotency-Key": "order-1"}).json()
    second = api.http.post("/v2/create", json=body, headers={"Idempotency-Key": "order-1"}).json()
    assert [s["key"] for s in first] == [s["key"] for s in second]
    in_body = api.http.post("/v2/create", json={**body, "idempotency_key": "order-1"}).json()
    assert [s["key"] for s in in_body] == [s["key"] for s in first]
    other = api.http.post("/v2/create", json=body, headers={"Idempotency-Key": "order-2"}).json()
    assert other[0]["key"] != first[0]["key"]


def test_same_idempotency_key_with_another_body_is_400(api: Api) -> None:
    headers = {"Idempotency-Key": "order-3"}
    api.http.post(
        "/v2/create", json={"secret": api.secret, "tasks": {"task_name": "hello", "name": "a"}}, headers=headers
    )
    r = api.http.post(
        "/v2/create", json={"secret": api.secret, "tasks": {"task_name": "hello", "name": "b"}}, headers=headers
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["name"] == "Idempotency-Key"


def test_a_create_refused_at_the_account_limit_is_created_by_its_retry_with_the_same_key(
    dragon: DragonProcess, tmp_path: Path
) -> None:
    """The refused request's claim of the key named tasks that were never written: the
    retry must create them, not answer with nothing."""
    api = Api(dragon.url, dragon.cli("accounts", "create", "retrier", "--max-queued-tasks", "1")["secret"])
    gate = tmp_path / "gate"
    [held] = api.create({"task_name": "test.gate", "gate": str(gate)})
    body = {"secret": api.secret, "tasks": {"task_name": "hello", "name": "retried"}}
    headers = {"Idempotency-Key": "after-the-limit"}
    assert api.http.post("/v2/create", json=body, headers=headers).status_code == 401
    gate.touch()
    api.wait([held["key"]])
    retried = api.http.post("/v2/create", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    [created] = retried.json()
    assert api.wait([created["key"]])[0]["status"] == "success"
    again = api.http.post("/v2/create", json=body, headers=headers).json()
    assert [s["key"] for s in again] == [created["key"]]


def test_concurrent_duplicates_create_one_set_of_tasks(api: Api) -> None:
    body = {"secret": api.secret, "tasks": [{"task_name": "hello", "name": f"c{i}"} for i in range(5)]}
    answers: list[list[str]] = []

    def post() -> None:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            r = http.post("/v2/create", json=body, headers={"Idempotency-Key": "burst"})
            answers.append([s["key"] for s in r.json()])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    assert all(a == answers[0] for a in answers)
    assert len(answers[0]) == 5
