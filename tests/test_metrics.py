"""Dragon's metrics in Ray's Prometheus export (dragon/metrics.py): after a few tasks of
each kind, the node's metrics endpoint shows them, counted where they happened."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api, DragonProcess
from tests.support.servers import Origin, Receiver
from tests.support.service import ask_ray


@pytest.fixture(scope="module")
def metrics_url(dragon: DragonProcess) -> str:
    """The head node's Prometheus endpoint, as Ray's node table gives it."""
    [port] = ask_ray(dragon.ray_address, dragon.env, "[n['MetricsExportPort'] for n in ray.nodes() if n['Alive']]")
    return f"http://127.0.0.1:{port}/metrics"


Reading = Callable[..., float]


def scrape(url: str) -> Reading:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    families = list(text_string_to_metric_families(httpx.get(url, timeout=30).text))

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    return value


def eventually(url: str, check: Callable[[Reading], bool], timeout: float = 90) -> Reading:
    """Ray's processes report every few seconds: scrape until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        reading = scrape(url)
        if check(reading) or time.monotonic() > deadline:
            return reading
        time.sleep(1)


def test_task_fetch_storage_and_callback_metrics_are_exported(api: Api, metrics_url: str, origin: Origin) -> None:
    before = scrape(metrics_url)
    receiver = Receiver().start()
    receiver.answers = [500]  # the first attempt fails: one retry, then delivered
    try:
        url = origin.add(f"metrics-{uuid.uuid4().hex}.bin", b"x" * 5000)
        statuses = api.wait(
            [
                s["key"]
                for s in api.create(
                    [
                        {"task_name": "hello", "name": "m1"},
                        {"task_name": "hello", "name": "m2", "url_callback": f"{receiver.url}/done"},
                        {"task_name": "hello", "name": 12},  # refused parameters: created ended
                        {"task_name": "test.fail", "kind": "task"},
                        {"task_name": "test.copy", "url": url},
                        {"task_name": "test.copy", "url": f"{origin.url}/missing-{uuid.uuid4().hex}"},
                        {"task_name": "test.input", "url": url},
                        {"task_name": "test.input", "url": 12},  # refused parameters: created ended
                    ]
                )
            ]
        )
        ended = ["success", "success", "error", "error", "success", "error", "success", "error"]
        assert [s["status"] for s in statuses] == ended
        receiver.wait_for(2)

        def grown(name: str, by: float, **labels: str) -> Callable[[Reading], bool]:
            return lambda now: now(name, **labels) - before(name, **labels) >= by

        checks = {
            "created hello": grown("ray_dragon_tasks_created_total", 3, task_name="hello"),
            "created copy": grown("ray_dragon_tasks_created_total", 2, task_name="test.copy"),
            "hello successes": grown("ray_dragon_tasks_ended_total", 2, task_name="hello", status="success"),
            "hello errors": grown("ray_dragon_tasks_ended_total", 1, task_name="hello", status="error"),
            "fail errors": grown("ray_dragon_tasks_ended_total", 1, task_name="test.fail", status="error"),
            "durations": grown("ray_dragon_task_duration_seconds_count", 2, task_name="test.copy"),
            "input durations": grown("ray_dragon_task_duration_seconds_count", 1, task_name="test.input"),
            "queue waits": grown("ray_dragon_task_queue_wait_seconds_count", 2, task_name="hello"),
            "fetched bytes": grown("ray_dragon_fetch_bytes_total", 5000),
            "fetch errors": grown("ray_dragon_fetch_errors_total", 1),
            "stored bytes": grown("ray_dragon_storage_bytes_written_total", 5000, kind="persistent"),
            "callback retries": grown("ray_dragon_callback_retries_total", 1),
            "callbacks delivered": grown("ray_dragon_callback_deliveries_total", 1, state="delivered"),
        }
        after = eventually(metrics_url, lambda now: all(check(now) for check in checks.values()))
        assert [name for name, check in checks.items() if not check(after)] == []
        # a refused task never ran: no duration for it. Counted on test.input, which only
        # the pipeline tests also run: hello's count may still grow by durations of earlier
        # tests' tasks that Ray had not exported when ``before`` was read.
        assert (
            after("ray_dragon_task_duration_seconds_count", task_name="test.input")
            - before("ray_dragon_task_duration_seconds_count", task_name="test.input")
            == 1
        )
    finally:
        receiver.stop()


def test_running_and_queued_tasks_are_gauged_per_account(dragon: DragonProcess, metrics_url: str) -> None:
    name = f"gauged{uuid.uuid4().hex[:6]}"
    account = dragon.cli("accounts", "create", name, "--max-concurrent-tasks", "1")
    api = Api(dragon.url, account["secret"])
    gate = Path(tempfile.gettempdir()) / f"gate-{uuid.uuid4().hex}"
    keys = [s["key"] for s in api.create([{"task_name": "test.gate", "gate": str(gate)} for _ in range(3)])]
    try:
        busy = eventually(
            metrics_url,
            lambda now: (
                now("ray_dragon_tasks_running", account=name) == 1 and now("ray_dragon_tasks_queued", account=name) == 2
            ),
        )
        assert (busy("ray_dragon_tasks_running", account=name), busy("ray_dragon_tasks_queued", account=name)) == (1, 2)
    finally:
        gate.touch()
    api.wait(keys)
    idle = eventually(
        metrics_url,
        lambda now: (
            now("ray_dragon_tasks_running", account=name) == 0 and now("ray_dragon_tasks_queued", account=name) == 0
        ),
    )
    assert (idle("ray_dragon_tasks_running", account=name), idle("ray_dragon_tasks_queued", account=name)) == (0, 0)
    gate.unlink()
