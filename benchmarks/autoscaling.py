"""A backlog of CPU tasks makes the autoscaler add the nodes it may, though shards bind tasks.

Shards bind each task to a node with room and keep the rest queued (dragon/actors/
dispatch.py); Ray's autoscaler does not count node-bound tasks as demand, so this checks
that what a shard leaves unbound is enough for the autoscaler to grow the cluster to its
limit. Ray's autoscaler with its fake multi-node provider (worker nodes are local
processes): a head with 1 CPU and one worker node of 1 CPU started by hand (shards bind
tasks once two nodes run them), a "cpu" node type {CPU: 1} between 0 and
``--max-nodes``, idle time-out 6 s. One create of ``--tasks`` test.where tasks (1 CPU, ``--seconds`` each).
It prints when each node joined, how many ran where, the time to the last end, and
when the idle nodes were removed (the shards' request to the autoscaler withdrawn):

    python benchmarks/autoscaling.py [--tasks 12] [--seconds 6] [--max-nodes 3] [--no-binding]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.cluster import LocalCluster, NodeType, wait_until  # noqa: E402
from tests.support.service import DragonProcess  # noqa: E402


def demo(
    tasks: int = 12, seconds: float = 6.0, max_nodes: int = 3, binding: bool = True, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the scenario; returns the most nodes seen alive at once, the seconds from create
    to the last end, how many tasks ran on each node, and the seconds from the last end
    until only the head was left."""
    work = Path(tempfile.mkdtemp(prefix="dragon-autoscaling-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "RAY_"))},
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_API_REPLICA_CPUS": "0",
        "DRAGON_BIND_TASKS_TO_NODES": "true" if binding else "false",
    }
    types = [NodeType("cpu", {"CPU": 1}, max_workers=max_nodes)]
    cluster = LocalCluster(work, env, head_cpus=1, autoscaling=types, idle_timeout_minutes=0.1)
    try:
        cluster.add_node("static", cpus=1)
        service = DragonProcess(work / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "demo", "--max-concurrent-tasks", str(tasks))["secret"]
        service.start()
        http = httpx.Client(base_url=service.url, timeout=120)
        body = {"secret": secret, "tasks": [{"task_name": "test.where", "seconds": seconds}] * tasks}
        created = time.monotonic()
        keys = [status["key"] for status in http.post("/v2/create", json=body).json()]
        say(f"{tasks} tasks of {seconds:g} s created on a cluster of two 1-CPU nodes (at most {max_nodes} more)")
        most, joined = 2, [0.0, 0.0]
        while True:
            statuses = http.post("/v2/status", json={"tasks": keys}).json()
            alive = len(cluster.alive_nodes())
            if alive > most:
                joined += [round(time.monotonic() - created, 1)] * (alive - most)
                say(f"{alive} nodes alive at {joined[-1]} s")
                most = alive
            if all(s["status"] in ("success", "error") for s in statuses):
                break
            time.sleep(0.5)
        took = round(time.monotonic() - created, 1)
        errors = [s["error"] for s in statuses if s["status"] == "error"]
        spread = Counter(s["result"]["node_id"][-8:] for s in statuses if s["status"] == "success")
        say(f"all ended {took} s after create ({len(errors)} errors); tasks per node: {dict(spread)}")
        ended = time.monotonic()
        wait_until(lambda: len(cluster.alive_nodes()) == 2, 180, "the idle nodes were never removed", interval=0.5)
        removed = round(time.monotonic() - ended, 1)
        say(f"idle, the added nodes were removed {removed} s after the last end (idle time-out 6 s)")
        return {
            "most_nodes": most,
            "joined_at": joined,
            "seconds": took,
            "errors": errors,
            "per_node": spread,
            "removed_after": removed,
        }
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--max-nodes", type=int, default=3)
    parser.add_argument("--no-binding", action="store_true", help="every task to Ray as it starts (the old way)")
    args = parser.parse_args(argv)
    return demo(args.tasks, args.seconds, args.max_nodes, not args.no_binding)


if __name__ == "__main__":
    main()
