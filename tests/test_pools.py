"""Pooled task types (beat tracking) in long-lived pool members (dragon/actors/pool.py),
on a service whose nodes all get a pool (``worker_pools = "all"``: this machine has no
GPU, so the members run on CPU, as on a GPU-less node of a real cluster)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api, service_env
from tests.support.cluster import wait_until
from tests.support.platforms import Platforms
from tests.support.servers import Origin
from tests.support.service import DragonProcess

MEMBER = "ray::PoolMember"
CLIP = "audio_beats/synthetic/syn_waltz_3-4_96bpm.flac"
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, platforms: Platforms) -> Iterator[Api]:
    env = {
        **service_env(platforms),
        "DRAGON_WORKER_POOLS": "all",
        "DRAGON_POOL_SLOTS": "1",
        "DRAGON_POOL_IDLE_SECONDS": "6",
    }
    service = DragonProcess(tmp_path_factory.mktemp("pools") / "data", env)
    service.data_dir.mkdir()
    secret = service.cli("accounts", "create", "pia")["secret"]
    service.start()
    yield Api(service.url, secret, service)
    service.stop()


def members(api: Api) -> list[int]:
    assert api.process is not None
    return api.process.pids(MEMBER)


def test_pooled_tasks_run_one_after_another_in_the_same_long_lived_member(pooled: Api) -> None:
    first = pooled.result({"task_name": "test.pooled"})
    second = pooled.result({"task_name": "test.pooled", "seconds": 0.3})
    assert first["pid"] == second["pid"]
    assert members(pooled) == [first["pid"]]


def test_beat_tracking_in_a_pool_member_gives_what_a_stateless_worker_gives(
    pooled: Api, api: Api, media: Origin
) -> None:
    task = {"task_name": "audio.beats", "url": f"{media.url}/{CLIP}"}
    in_pool = pooled.result(task)
    assert len(members(pooled)) == 1
    assert in_pool == api.result(task)
    assert len(in_pool["beats"]) > 10


def test_a_member_that_dies_mid_task_is_restarted_and_the_task_retried(pooled: Api) -> None:
    result = pooled.result({"task_name": "test.pooled", "crash_first": True})
    assert result["attempt"] == 2
    assert members(pooled) == [result["pid"]]


def test_a_canceled_pooled_task_that_reports_progress_stops_and_its_member_lives_on(pooled: Api) -> None:
    [status] = pooled.create({"task_name": "test.pooled", "seconds": 30})
    running = pooled.wait_for(status["key"], "executing", timeout=60)
    pid = members(pooled)
    r = pooled.http.post("/v2/cancel", json={"secret": pooled.secret, "tasks": [running["key"]]})
    assert r.status_code == 200, r.text
    [ended] = pooled.wait([status["key"]])
    assert ended["error"].startswith("CanceledError")
    assert pooled.result({"task_name": "test.pooled"})["pid"] == pid[0]


def test_a_canceled_pooled_task_that_never_reports_has_its_member_restarted(pooled: Api) -> None:
    [status] = pooled.create({"task_name": "test.pooled", "seconds": 60, "report": False})
    pooled.wait_for(status["key"], "executing", timeout=60)
    [before] = members(pooled)
    r = pooled.http.post("/v2/cancel", json={"secret": pooled.secret, "tasks": [status["key"]]})
    assert r.status_code == 200, r.text
    wait_until(lambda: before not in members(pooled), 30, "the member's restart")
    after = pooled.result({"task_name": "test.pooled"})
    assert after["pid"] != before
    [ended] = pooled.status([status["key"]])
    assert ended["error"].startswith("CanceledError")


def test_idle_members_are_stopped_and_started_again_on_demand(pooled: Api, tmp_path: Path) -> None:
    pooled.result({"task_name": "test.pooled"})
    assert members(pooled)
    started = time.monotonic()
    wait_until(lambda: not members(pooled), 60, "idle pool members to stop")
    assert time.monotonic() - started < 60
    assert pooled.result({"task_name": "test.pooled"})["pid"] in members(pooled)
