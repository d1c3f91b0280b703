"""Pooled task types (beat tracking) in long-lived pool members (dragon/actors/pool.py),
on a service whose nodes all get a pool (``worker_pools = "all"``: this machine has no
GPU, so the members run on CPU, as on a GPU-less node of a real cluster)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api, service_env
from tests.support.cluster import LocalCluster, wait_until
from tests.support.movies import THREE_COLOURS, dominant_colours
from tests.support.platforms import Platforms
from tests.support.servers import Origin
from tests.support.service import DragonProcess

MEMBER = "ray::PoolMember"
CLIP = "audio_beats/synthetic/syn_waltz_3-4_96bpm.flac"
pytestmark = pytest.mark.timeout(300)


@dataclass
class Pooled:
    api: Api
    cluster: LocalCluster

    def members(self) -> list[int]:
        return self.cluster.pids(title=MEMBER)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, platforms: Platforms) -> Iterator[Pooled]:
    """A node with 4 logical CPUs (on this machine's 2 cores) and a GPU as far as Ray
    knows (torch finds no CUDA, so GPU work runs on the CPU): its member holds half the
    GPU, as on a real GPU node, and a movie's GPU segments render in it."""
    env = {
        **service_env(platforms),
        "DRAGON_WORKER_POOLS": "all",
        "DRAGON_POOL_SLOTS": "1",
        "DRAGON_POOL_IDLE_SECONDS": "6",
    }
    base = tmp_path_factory.mktemp("pools")
    cluster = LocalCluster(base, env, head_cpus=4, head_gpus=1)
    try:
        service = DragonProcess(base / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "pia")["secret"]
        service.start()
        yield Pooled(Api(service.url, secret, service), cluster)
        service.stop()
    finally:
        cluster.close()


def test_pooled_tasks_run_one_after_another_in_the_same_long_lived_member(pooled: Pooled) -> None:
    first = pooled.api.result({"task_name": "test.pooled"})
    second = pooled.api.result({"task_name": "test.pooled", "seconds": 0.3})
    assert first["pid"] == second["pid"]
    assert pooled.members() == [first["pid"]]


def test_beat_tracking_in_a_pool_member_gives_what_a_stateless_worker_gives(
    pooled: Pooled, api: Api, media: Origin
) -> None:
    task = {"task_name": "audio.beats", "url": f"{media.url}/{CLIP}"}
    in_pool = pooled.api.result(task, timeout=120)  # a member's first loads torch: over 8 s on a busy machine
    assert len(pooled.members()) == 1
    assert in_pool == api.result(task, timeout=120)
    assert len(in_pool["beats"]) > 10


def test_a_movie_on_a_gpu_node_renders_its_segments_in_the_pool_member(pooled: Pooled, tmp_path: Path) -> None:
    # Ray titles a process by the task it runs: "ray::PoolMember.segment" in a member,
    # "ray::_segment" in a stateless worker. Watching the titles while the movie renders
    # tells where its segments went, whenever the member was started (this module stops
    # idle members after 6 s).
    in_members: set[int] = set()
    stateless: set[int] = set()
    ended = threading.Event()

    def watch() -> None:
        while not ended.is_set():
            in_members.update(pooled.cluster.pids(title=f"{MEMBER}.segment"))
            stateless.update(pooled.cluster.pids(title="ray::_segment"))
            time.sleep(0.02)  # a segment renders for a second or more here

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # Three 4 s colours at 25 fps: three of the test service's 5 s segments, which render one
        # after another in the member (one slot), not beside it (the movie task holds the GPU's other half).
        [queued] = pooled.api.create(
            {"task_name": "video.create", "definition": THREE_COLOURS, "antialias": 1, "profile": "360p"}
        )
        [final] = pooled.api.wait([queued["key"]], timeout=180)
    finally:
        ended.set()
        watcher.join()
    assert final["status"] == "success", final.get("error")
    assert len(in_members) == 1 and not stateless  # one member rendered them, no stateless task
    assert pooled.members() == list(in_members)  # and it lives on
    path = tmp_path / "movie.mp4"
    path.write_bytes(httpx.get(final["result"]["export"]).content)
    assert dominant_colours(path) == [0] * 100 + [1] * 100 + [2] * 100  # the segments joined in order, none lost


def test_a_member_that_dies_mid_task_is_restarted_and_the_task_retried(pooled: Pooled) -> None:
    result = pooled.api.result({"task_name": "test.pooled", "crash_first": True})
    assert result["attempt"] == 2
    assert pooled.members() == [result["pid"]]


def test_a_canceled_pooled_task_that_reports_progress_stops_and_its_member_lives_on(pooled: Pooled) -> None:
    [status] = pooled.api.create({"task_name": "test.pooled", "seconds": 30})
    running = pooled.api.wait_for(status["key"], "executing", timeout=60)
    pid = pooled.members()
    r = pooled.api.http.post("/v2/cancel", json={"secret": pooled.api.secret, "tasks": [running["key"]]})
    assert r.status_code == 200, r.text
    [ended] = pooled.api.wait([status["key"]])
    assert ended["error"].startswith("CanceledError")
    assert pooled.api.result({"task_name": "test.pooled"})["pid"] == pid[0]


def test_a_canceled_pooled_task_that_never_reports_has_its_member_restarted(pooled: Pooled) -> None:
    [status] = pooled.api.create({"task_name": "test.pooled", "seconds": 60, "report": False})
    pooled.api.wait_for(status["key"], "executing", timeout=60)
    [before] = pooled.members()
    r = pooled.api.http.post("/v2/cancel", json={"secret": pooled.api.secret, "tasks": [status["key"]]})
    assert r.status_code == 200, r.text
    wait_until(lambda: before not in pooled.members(), 30, "the member's restart")
    after = pooled.api.result({"task_name": "test.pooled"})
    assert after["pid"] != before
    [ended] = pooled.api.status([status["key"]])
    assert ended["error"].startswith("CanceledError")


def test_a_member_killed_for_good_by_hand_loses_no_task_and_is_replaced(pooled: Pooled) -> None:
    import ray

    from dragon.actors.pool import ACTOR_PREFIX

    ray.init(address=pooled.cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        [status] = pooled.api.create({"task_name": "test.pooled", "seconds": 30})
        pooled.api.wait_for(status["key"], "executing", timeout=60)
        [before] = pooled.members()
        [member] = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(ACTOR_PREFIX)]
        ray.kill(ray.get_actor(member["name"], namespace=member["namespace"]), no_restart=True)
    finally:
        ray.shutdown()
    [ended] = pooled.api.wait([status["key"]], timeout=90)
    assert (ended["status"], ended["result"]["attempt"]) == ("success", 2), ended.get("error")

    def in_a_new_member() -> int | None:
        pid: int = pooled.api.result({"task_name": "test.pooled"})["pid"]
        return pid if pid != before and pooled.members() == [pid] else None

    wait_until(in_a_new_member, 30, "pooled tasks in a new member")


def test_idle_members_are_stopped_and_started_again_on_demand(pooled: Pooled, tmp_path: Path) -> None:
    pooled.api.result({"task_name": "test.pooled"})
    assert pooled.members()
    started = time.monotonic()
    wait_until(lambda: not pooled.members(), 60, "idle pool members to stop")
    assert time.monotonic() - started < 60
    assert pooled.api.result({"task_name": "test.pooled"})["pid"] in pooled.members()


def test_a_canceled_segment_stops_rendering_in_its_member(pooled: Pooled, tmp_path: Path) -> None:
    import ray

    from dragon.actors.pool import PoolMember
    from dragon.movie import segments
    from dragon.movie.render import Job, lengths
    from dragon.sxml import parse

    definition = '<effect type="none" duration="3600"><image color="#ff0000"/></effect>'  # a minute of CPU or more
    job = Job(definition, "mobile-small", 1, lengths(parse(definition), {}))
    ray.init(address=pooled.cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        member = PoolMember.options(max_concurrency=2, num_cpus=0).remote()  # type: ignore[attr-defined]
        rendering = member.segment.remote(job, segments.Inputs.here({}), 0, 54000, str(tmp_path))
        assert ray.get(next(rendering)) > 0
        assert ray.get(member.idle_for.remote()) == 0  # still rendering
        ray.cancel(rendering)
        wait_until(lambda: ray.get(member.idle_for.remote()) > 0, 10, "the member to stop the canceled segment")
    finally:
        ray.shutdown()
