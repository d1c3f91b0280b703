"""The client's configuration (credentials from the environment, retries, Retry-After,
time-outs), against a loopback HTTP server that answers as a busy or stuck service would
(no Dragon needed)."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest

from dragon.client import Client, LimitError, UnavailableError
from tests.support.servers import Receiver


@pytest.fixture
def busy() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _gaps(server: Receiver) -> list[float]:
    times = [r["at"] for r in server.received]
    return [b - a for a, b in itertools.pairwise(times)]


def test_retry_after_in_seconds_and_as_a_date_is_waited_for(busy: Receiver) -> None:
    busy.answers = [(429, {"Retry-After": "1"}), (503, {"Retry-After": formatdate(time.time() + 4, usegmt=True)})]
    with Client(busy.url, secret="s", retries=2, backoff=0.01) as client:
        assert client.request("POST", "/v2/status").status_code == 200
    assert [r["answered"] for r in busy.received] == [429, 503, 200]
    first, second = _gaps(busy)
    assert first >= 1.0 and second >= 1.5  # the date was 4 s ahead, in whole seconds, a second ago


def test_429_502_503_504_are_retried_as_many_times_as_asked(busy: Receiver) -> None:
    busy.answers = [429, 502, 503, 504]
    with Client(busy.url, secret="s", retries=4, backoff=0.01) as client:
        assert client.request("POST", "/v2/status").status_code == 200
    assert len(busy.received) == 5


def test_retries_come_from_the_argument_or_dragon_retries(busy: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    busy.answers = [503] * 10
    with Client(busy.url, secret="s", retries=0) as client, pytest.raises(UnavailableError):
        client.request("POST", "/v2/status")
    assert len(busy.received) == 1
    monkeypatch.setenv("DRAGON_RETRIES", "2")
    with Client(busy.url, secret="s", backoff=0.01) as client, pytest.raises(UnavailableError):
        client.request("POST", "/v2/status")
    assert len(busy.received) == 1 + 3


def test_a_rate_limit_that_outlasts_the_retries_is_a_limit_error(busy: Receiver) -> None:
    busy.answers = [(429, {"Retry-After": "0"})] * 3
    with Client(busy.url, secret="s", retries=1) as client, pytest.raises(LimitError) as refused:
        client.request("POST", "/v2/create")
    assert refused.value.status_code == 429 and len(busy.received) == 2


def test_the_time_out_comes_from_the_argument_or_dragon_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog, never answered
    url = f"http://127.0.0.1:{stuck.getsockname()[1]}"
    try:
        for client in (Client(url, secret="s", timeout=0.3, retries=0), _from_env(monkeypatch, url)):
            started = time.monotonic()
            with client, pytest.raises(httpx.TimeoutException):
                client.request("POST", "/v2/status")
            assert time.monotonic() - started < 2
    finally:
        stuck.close()


def _from_env(monkeypatch: pytest.MonkeyPatch, url: str) -> Client:
    monkeypatch.setenv("DRAGON_TIMEOUT", "0.3")
    monkeypatch.setenv("DRAGON_RETRIES", "0")
    monkeypatch.setenv("DRAGON_URL", url)
    monkeypatch.setenv("DRAGON_SECRET", "s")
    return Client()


def test_credentials_come_from_the_arguments_else_dragon_secret_else_dragon_api_key(
    busy: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAGON_URL", busy.url)
    monkeypatch.setenv("DRAGON_API_KEY", "key-from-env")
    monkeypatch.setenv("DRAGON_SECRET", "secret-from-env")
    for client in (Client(), Client(api_key="key"), Client(secret="s")):
        with client:
            client.request("POST", "/v2/status")
    monkeypatch.delenv("DRAGON_SECRET")
    with Client() as client:
        client.request("POST", "/v2/status")
    sent = [r["headers"]["Authorization"] for r in busy.received]
    assert sent == ["Secret secret-from-env", "Api-Key key", "Secret s", "Api-Key key-from-env"]
    monkeypatch.delenv("DRAGON_API_KEY")
    with pytest.raises(ValueError, match="DRAGON_API_KEY"):
        Client()
