"""Dragon on a real multi-node Ray cluster on this machine (tests/support/cluster.py):
tasks spread over nodes, a worker node or the API replica's node dies, the status
actor restarts, GPU nodes join or are added by the autoscaler. Nothing is lost."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks import autoscaling, gpu_autoscaling, scaling
from dragon.placement import GPU_CHECK_INTERVAL, GpuRule
from dragon.status import shard_of
from tests.conftest import Api
from tests.support.cluster import LocalCluster, wait_until
from tests.support.service import ROOT, DragonProcess


def _env(**extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "RAY_"))},
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
        "DRAGON_BLOCK_TIMEOUT": "8",
        "DRAGON_STREAM_POLL_TIMEOUT": "2",
        "DRAGON_POOL_SLOTS": "1",  # a pool member fits on the 1-CPU GPU node
        **extra,
    }


class Deployment:
    """A cluster and the service deployed onto it with `dragon serve --address`."""

    def __init__(self, cluster: LocalCluster, api: Api):
        self.cluster = cluster
        self.api = api

    def replica_node(self) -> str:
        [node] = {node for _, node in self.cluster.processes("ServeReplica:dragon:Api")}
        return node


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Head with no task CPUs (it holds the service's actors) and two 2-CPU worker nodes;
    the API replica (0.25 CPU) can only live on a worker node."""
    base = tmp_path_factory.mktemp("cluster")
    env = _env()
    cluster = LocalCluster(base, env, head_cpus=0)
    try:
        cluster.add_node("a", cpus=2)
        cluster.add_node("b", cpus=2)
        service = DragonProcess(base / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "alice")["secret"]
        service.start()
        yield Deployment(cluster, Api(service.url, secret))
    finally:
        cluster.close()


def _ended(api: Api, keys: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    statuses = api.wait(keys, timeout)
    assert all(s["status"] in ("success", "error") for s in statuses), statuses
    return statuses


def test_shards_live_on_the_head_and_tasks_and_their_outputs_stay_on_worker_nodes(deployment: Deployment) -> None:
    """With the SQLite journal the shards run beside it, on the head; each node that
    stores outputs gets its own storage actor, so output bytes never leave their node."""
    cluster, api = deployment.cluster, deployment.api
    assert [node for _, node in cluster.processes("ray::TaskShard")] == ["head", "head"]
    keys = [s["key"] for s in api.create([{"task_name": "test.where", "seconds": 1, "store": True}] * 6)]
    statuses = _ended(api, keys)
    assert all(s["status"] == "success" for s in statuses)
    assert {s["result"]["node"] for s in statuses} == {"a", "b"}
    assert len({s["result"]["node_id"] for s in statuses}) == 2
    assert all(httpx.get(s["result"]["output"]).text == s["result"]["node"] for s in statuses)
    storing = {node for _, node in cluster.processes("ray::StorageActor")}
    assert {"a", "b"} <= storing <= {"head", "a", "b"}


def test_a_pipeline_step_runs_on_the_node_that_made_its_input(deployment: Deployment) -> None:
    """Soft node affinity: each step follows its input to its node while that node has room."""
    api = deployment.api
    pairs = [
        [{"task_name": "test.where", "seconds": 1, "store": True}, {"task_name": "test.where", "url": {"task": 0}}]
        for _ in range(4)
    ]
    created = [api.create(pair) for pair in pairs]
    statuses = [_ended(api, [s["key"] for s in pair]) for pair in created]
    assert all(s["status"] == "success" for pair in statuses for s in pair)
    assert {made["result"]["node"] for made, _ in statuses} == {"a", "b"}  # the inputs were made on both nodes
    assert [used["result"]["node"] for _, used in statuses] == [made["result"]["node"] for made, _ in statuses]


def test_a_task_held_back_for_room_on_the_nodes_is_canceled_at_once_and_never_runs(deployment: Deployment) -> None:
    # Shards bind two tasks per CPU to the worker nodes (2 x 2 CPUs here) and hold the rest
    # back (dragon/actors/dispatch.py): the last task waits in its shard, not in Ray.
    api = deployment.api
    *busy, last = api.create([{"task_name": "test.where", "seconds": 3}] * 8 + [{"task_name": "hello", "name": "x"}])
    assert api.status([last["key"]])[0]["status"] == "queued"
    canceled = api.http.post("/v2/cancel", json={"secret": api.secret, "tasks": [last["key"]]}).json()
    assert canceled["canceled"] == [last["key"]]
    ended = _ended(api, [t["key"] for t in busy] + [last["key"]])
    assert [s["status"] for s in ended[:-1]] == ["success"] * 8
    assert ended[-1]["status"] == "error" and ended[-1]["error"].startswith("CanceledError"), ended[-1]
    assert not ended[-1].get("result")
    # The shard kept nothing of it: new work runs at once.
    assert api.create({"task_name": "hello", "name": "next"}, block=True)[0]["status"] == "success"


def test_killing_a_worker_node_mid_batch_loses_no_task(deployment: Deployment) -> None:
    """The node without the API replica dies while it runs tasks; they run again elsewhere."""
    cluster, api = deployment.cluster, deployment.api
    victim = "b" if deployment.replica_node() == "a" else "a"
    keys = [s["key"] for s in api.create([{"task_name": "test.where", "seconds": 3}] * 10)]
    wait_until(lambda: len(cluster.pids(victim, "ray::execute")) >= 1, 60, "no task started on the victim")
    cluster.kill_node(victim)
    cluster.add_node("c", cpus=2)
    statuses = _ended(api, keys, timeout=180)
    assert [s["status"] for s in statuses] == ["success"] * 10, [s.get("error") for s in statuses]
    retried = [s["result"] for s in statuses if s["result"]["attempt"] > 1]
    assert retried, "no task was running on the killed node"
    assert all(r["node"] != victim for r in retried)


def test_killing_the_api_replicas_node_leaves_statuses_and_streams_reachable(deployment: Deployment) -> None:
    cluster, api = deployment.cluster, deployment.api
    [ended] = api.create({"task_name": "test.where"}, block=True)
    [running] = api.create({"task_name": "test.steps", "steps": 40, "delay": 0.5})
    victim = deployment.replica_node()
    cut_short = []
    with api.http.stream("GET", "/v2/stream", params={"tasks": [running["key"]]}) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines))[0]["key"] == running["key"]
        cluster.kill_node(victim)
        try:  # the replica serving this stream is gone: the stream breaks or ends early
            cut_short += [json.loads(line) for line in lines if line]
        except httpx.HTTPError:
            pass
    assert all(change["status"] != "success" for change in cut_short)
    cluster.add_node("d", cpus=2)

    def reconnected() -> list[Any] | None:
        try:
            with api.http.stream("GET", "/v2/stream", params={"tasks": [running["key"]]}) as again:
                if again.status_code != 200:
                    return None
                return [json.loads(line) for line in again.iter_lines() if line]
        except httpx.HTTPError:
            return None

    resumed = wait_until(reconnected, 120, "the stream never came back")
    final = (
        resumed[-1] if isinstance(resumed[-1], dict) else resumed[-1][0]
    )  # a change, or the one-line list of an ended task
    assert final["status"] == "success" and final["result"] == {"steps": 40}
    assert deployment.replica_node() != victim
    [again] = api.status([ended["key"]])
    assert again["status"] == "success" and again["result"] == ended["result"]


def test_a_shard_killed_mid_batch_loses_no_task_and_no_status(deployment: Deployment) -> None:
    """The shard owning a batch dies with tasks queued, running and ended: it restarts,
    runs again what had not ended, and every status a client saw stays as it was."""
    cluster, api = deployment.cluster, deployment.api
    keys = [s["key"] for s in api.create([{"task_name": "test.where", "seconds": 0.5}] * 12)]
    owner = shard_of(keys[0], 2)
    ended = wait_until(lambda: [s for s in api.status(keys) if s["status"] == "success"], 60, "nothing ended")
    shards = sorted(cluster.pids("head", "ray::TaskShard"))
    victim = cluster.ask(f"ray.get(ray.get_actor('dragon-shard-{owner}').ready.remote())['pid']")
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: _statuses_if_reachable(api, keys), 120, "statuses never came back")
    statuses = _ended(api, keys, timeout=120)
    assert [s["status"] for s in statuses] == ["success"] * 12
    assert all(s["result"]["node"] for s in statuses)
    assert {s["key"]: s for s in statuses if s["key"] in {e["key"] for e in ended}} == {e["key"]: e for e in ended}
    assert sorted(cluster.pids("head", "ray::TaskShard")) != shards


def _statuses_if_reachable(api: Api, keys: list[str]) -> list[dict[str, Any]] | None:
    try:
        r = api.http.get("/v2/status", params={"tasks": keys})
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def test_gpu_capable_tasks_use_a_gpu_node_that_joins_later(deployment: Deployment) -> None:
    """DRAGON_USE_GPUS unset: while the cluster has no GPU, a GPU-capable task runs on CPUs;
    once a GPU node joins, the same task type asks for its GPU share and runs there."""
    cluster, api = deployment.cluster, deployment.api
    without = api.result({"task_name": "test.where_gpu"})
    assert without["gpu_ids"] == [] and without["node"] != "gpu"
    cluster.add_node("gpu", cpus=1, gpus=1)

    def on_gpu() -> dict[str, Any] | None:
        result = api.result({"task_name": "test.where_gpu"})
        return result if result["gpu_ids"] else None

    placed = wait_until(on_gpu, GPU_CHECK_INTERVAL + 30, "no task was given the new GPU")
    assert placed["node"] == "gpu" and placed["gpu_ids"] == ["0"]
    # A pooled task type runs in the GPU node's long-lived pool member, which keeps its GPU.
    first = api.result({"task_name": "test.pooled"})
    assert first["node"] == "gpu" and first["gpu_ids"] == ["0"]
    assert api.result({"task_name": "test.pooled"})["pid"] == first["pid"]
    assert [pid for pid, node in deployment.cluster.processes("ray::PoolMember")] == [first["pid"]]


def test_use_gpus_true_or_false_does_not_look_at_the_cluster() -> None:
    assert GpuRule(True).ask() is True
    assert GpuRule(False).ask() is False


@pytest.mark.slow
def test_queued_gpu_demand_brings_a_gpu_node_up_and_it_goes_away_when_idle() -> None:
    """benchmarks/gpu_autoscaling.py: Ray's autoscaler (fake multi-node provider), a
    CPU-only head, CPU and GPU node types at 0; with DRAGON_USE_GPUS=true a GPU-capable task
    waits for a GPU node, the autoscaler adds one, the task runs there, the node goes."""
    figures = gpu_autoscaling.demo()
    assert "GPU" not in figures["head"]["resources"]
    status = figures["status"]
    assert status["status"] == "success", status.get("error")
    assert status["result"]["gpu_ids"] == ["0"] and status["result"]["node_id"] != figures["head"]["node_id"]
    assert figures["gpu_node"]["resources"]["GPU"] == 1


def test_a_backlog_the_shards_hold_back_brings_up_every_node_allowed_and_they_go_when_idle() -> None:
    """benchmarks/autoscaling.py: shards bind tasks to nodes and hold the rest back, which
    Ray's autoscaler cannot see; their request to it (dragon/actors/control.py) must still
    grow the cluster to its limit, spread the work, and be withdrawn once all has ended."""
    figures = autoscaling.demo(tasks=10, seconds=5.0, max_nodes=3)
    assert figures["errors"] == [] and sum(figures["per_node"].values()) == 10
    assert figures["most_nodes"] == 5  # the head, the static node and the three nodes allowed
    # Nodes that came up ran work (not all: on a loaded machine the last may join once
    # every task is bound elsewhere, two per CPU).
    assert len(figures["per_node"]) >= 2
    assert figures["removed_after"] < 60


@pytest.mark.slow
def test_the_scaling_benchmark_runs_the_same_batch_on_one_then_two_worker_nodes() -> None:
    """benchmarks/scaling.py --quick: every task of both runs succeeds and both are timed."""
    figures = scaling.main(["--quick"])
    for nodes in (1, 2):
        run = figures["runs"][nodes]
        assert run["tasks"] == 44 and run["errors"] == 0, run["first_error"]
        assert run["per_second"] > 0
    assert figures["ratio"] == round(figures["runs"][2]["per_second"] / figures["runs"][1]["per_second"], 2)
