"""Queued GPU demand makes the autoscaler add a GPU node; idle, the node goes away.

Ray's autoscaler with its fake multi-node provider (worker nodes are local processes):
a head with 1 CPU and no GPU, a "cpu" node type {CPU: 1} and a "gpu" node type
{CPU: 1, GPU: 1}, both between 0 and 1 nodes, idle time-out 6 s. The service runs with
DRAGON_USE_GPUS=true, so a GPU-capable task (test.where_gpu, a 0.25 GPU share) asks
Ray for its GPU although no node has one. The script prints each step with its time:

    python benchmarks/gpu_autoscaling.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.cluster import LocalCluster, NodeType, wait_until  # noqa: E402
from tests.support.service import DragonProcess  # noqa: E402

NODE_TYPES = [NodeType("cpu", {"CPU": 1}), NodeType("gpu", {"CPU": 1, "GPU": 1})]
IDLE_TIMEOUT_MINUTES = 0.1


def demo(say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the scenario; returns the head's node, the task's result, the GPU node as Ray
    listed it, and the seconds each step took."""
    work = Path(tempfile.mkdtemp(prefix="dragon-gpu-autoscaling-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "RAY_"))},
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_USE_GPUS": "true",
    }
    started = time.monotonic()
    cluster = LocalCluster(work, env, head_cpus=1, autoscaling=NODE_TYPES, idle_timeout_minutes=IDLE_TIMEOUT_MINUTES)
    try:
        service = DragonProcess(work / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "demo")["secret"]
        service.start()
        [head] = cluster.alive_nodes()
        say(f"service up on a cluster of one node, no GPU: {head['resources']}")
        created = time.monotonic()
        http = httpx.Client(base_url=service.url, timeout=120)
        [status] = http.post("/v2/create", json={"secret": secret, "tasks": {"task_name": "test.where_gpu"}}).json()
        say("test.where_gpu created: it waits for a GPU the cluster does not have")

        def ended() -> dict[str, Any] | None:
            [now] = http.post("/v2/status", json={"tasks": [status["key"]], "block": True}).json()
            return now if now["status"] in ("success", "error") else None

        result = wait_until(ended, 120, "the GPU task never ended", interval=0.5)
        ran = time.monotonic()
        say(
            f"ended {ran - created:.1f} s after create: {result['status']} on node {result['result']['node_id'][-8:]} "
            f"with GPU ids {result['result']['gpu_ids']}"
        )
        gpu_nodes = [n for n in cluster.alive_nodes() if n["node_id"] == result["result"]["node_id"]]
        if gpu_nodes:
            say(f"that node, as Ray lists it: {gpu_nodes[0]['resources']}")
        wait_until(
            lambda: [n["node_id"] for n in cluster.alive_nodes()] == [head["node_id"]],
            180,
            "the idle GPU node was never removed",
            interval=0.5,
        )
        gone = time.monotonic()
        say(
            f"idle, the GPU node was removed {gone - ran:.1f} s after the task ended "
            f"(idle time-out {IDLE_TIMEOUT_MINUTES * 60:.0f} s)"
        )
        return {
            "head": head,
            "status": result,
            "gpu_node": gpu_nodes[0] if gpu_nodes else None,
            "seconds": {
                "start": round(created - started, 1),
                "to_result": round(ran - created, 1),
                "to_removal": round(gone - ran, 1),
            },
        }
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    demo()
