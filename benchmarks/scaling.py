"""Does throughput scale with worker nodes? The same batch on 1, then on 2 worker nodes.

A real multi-node Ray cluster on this machine (tests/support/cluster.py): a head node
with no task CPUs, holding the service (`dragon serve --address`, its API replica asking
for no CPU), and worker nodes of 1 CPU each. The batch, created in one /v2/create request:
200 image.thumb of 1800x1200 JPEGs and 20 video.thumb, inputs served from
../shared/media on loopback. It runs once with one worker node; a second node joins and
the same batch runs again; the second node is then killed, and this is done ``--rounds``
times (best of each side kept). Each run is preceded by a warm-up batch, so worker
processes are started before timing. Each worker node is pinned to its own core
(taskset), as on a machine of its own; the head is not pinned. Besides throughput, each
run reports the CPU milliseconds per task spent on the head and on the worker nodes.

    python benchmarks/scaling.py [--quick] [--images 200] [--videos 20] [--width 1200] [--rounds 3] [--no-binding]
                                 [--sleep 0.25 --node-cpus 8]

``--sleep S --node-cpus N`` isolates the control plane: the batch is as many test.where
tasks (1 CPU each, from tests/support/tasks.py) as it would hold thumbnails, each
sleeping S seconds, on nodes offering N CPUs. The work itself then uses no core, so on
a machine too small to run two nodes' thumbnails this shows whether the head's per-task
cost lets throughput double with the nodes (N / S tasks/s per node at best).

``--no-binding`` runs the service with DRAGON_BIND_TASKS_TO_NODES=false: every task goes
to Ray unbound as it starts (dragon/actors/dispatch.py says why binding is the default).

On a machine with fewer cores than nodes the nodes share the cores (and with the head):
the figures say how much the service's own work leaves to the tasks.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.cluster import LocalCluster  # noqa: E402
from tests.support.servers import Origin  # noqa: E402
from tests.support.service import DragonProcess  # noqa: E402

MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media")  # as tests/conftest.py
IMAGES = sorted((MEDIA / "images_exif" / "orientation_recurser").glob("*.jpg"))  # 1800x1200, EXIF orientations
VIDEOS = [MEDIA / "video" / "js_ffmpeg" / "video-640-360.mp4", MEDIA / "video" / "js_ffmpeg" / "iphone_rotated.mov"]


def batch(origin: Origin, images: int, width: int, videos: int, sleep: float = 0.0) -> list[dict[str, Any]]:
    if sleep:  # the control plane's share alone: tasks that hold a CPU without using it
        return [{"task_name": "test.where", "seconds": sleep}] * (images + videos)

    def url(path: Path) -> str:
        return f"{origin.url}/{path.relative_to(MEDIA)}"

    tasks = [
        {"task_name": "image.thumb", "url": url(IMAGES[i % len(IMAGES)]), "width": width, "height": width}
        for i in range(images)
    ]
    tasks += [
        {"task_name": "video.thumb", "url": url(VIDEOS[i % len(VIDEOS)]), "time": 1.0, "width": 320}
        for i in range(videos)
    ]
    return tasks


def cpu_per_task(
    before: dict[int, tuple[str, str, float]], after: dict[int, tuple[str, str, float]], tasks: int
) -> dict[str, Any]:
    """CPU milliseconds per task that the head and the worker nodes each spent in between,
    and the head's by process (the service's actors, raylet, GCS...), largest first."""
    spent: dict[str, float] = {}
    head: dict[str, float] = {}
    for pid, (node, name, seconds) in after.items():
        used = seconds - (before[pid][2] if pid in before else 0.0)
        role = "head" if node == "head" else "workers"
        spent[role] = spent.get(role, 0.0) + used
        if role == "head":
            head[name] = head.get(name, 0.0) + used
    per_task = {role: round(1000 * seconds / tasks, 1) for role, seconds in sorted(spent.items())}
    top = sorted(head.items(), key=lambda item: -item[1])[:6]
    return {**per_task, "head_by_process": {name: round(1000 * seconds / tasks, 1) for name, seconds in top}}


def run(http: httpx.Client, secret: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Create the tasks in one request and wait until all have ended: seconds and outcomes."""
    started = time.monotonic()
    created = http.post("/v2/create", json={"secret": secret, "tasks": tasks})
    created.raise_for_status()
    keys = [status["key"] for status in created.json()]
    while True:
        statuses = http.post("/v2/status", json={"tasks": keys, "block": True}).json()
        if all(s["status"] in ("success", "error") for s in statuses):
            break
    seconds = time.monotonic() - started
    errors = [s["error"] for s in statuses if s["status"] == "error"]
    return {
        "tasks": len(keys),
        "seconds": round(seconds, 2),
        "per_second": round(len(keys) / seconds, 2),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def measure(
    images: int,
    width: int,
    videos: int,
    warmup: int,
    rounds: int,
    binding: bool = True,
    sleep: float = 0.0,
    node_cpus: int = 1,
) -> dict[str, Any]:
    """Rounds of (1 node, then 2 nodes) on one cluster and one service, the second node
    added before and killed after its run, so drifting load from elsewhere on the machine
    hits both alike; keeps each side's best run. Returns them and their ratio."""
    work = Path(tempfile.mkdtemp(prefix="dragon-scaling-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "RAY_"))},
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
        "DRAGON_API_REPLICA_CPUS": "0",
        "DRAGON_BLOCK_TIMEOUT": "10",
        "DRAGON_BIND_TASKS_TO_NODES": "true" if binding else "false",
        "DRAGON_TASK_MODULES": "tests.support.tasks",  # test.where, for --sleep
    }
    origin = Origin(MEDIA)
    cluster = LocalCluster(work, env, head_cpus=0)
    try:
        cluster.add_node("worker-1", cpus=node_cpus, cores=[0])
        service = DragonProcess(work / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "bench")["secret"]
        service.start()
        http = httpx.Client(base_url=service.url, timeout=120)
        best: dict[int, dict[str, Any]] = {}
        for round_ in range(1, rounds + 1):
            for nodes in (1, 2):
                if nodes == 2:
                    cluster.add_node(f"worker-2.{round_}", cpus=node_cpus, cores=[1 % (os.cpu_count() or 1)])
                run(http, secret, batch(origin, warmup * nodes, width, max(1, warmup // 4) * nodes, sleep))
                before = cluster.cpu_times()
                figures = run(http, secret, batch(origin, images, width, videos, sleep))
                figures["cpu_ms_per_task"] = cpu_per_task(before, cluster.cpu_times(), figures["tasks"])
                figures["load_average"] = round(os.getloadavg()[0], 1)  # other work on the machine skews the figures
                cpu = figures["cpu_ms_per_task"]
                print(
                    f"round {round_}, {nodes} worker node(s): {figures['tasks']} tasks in {figures['seconds']} s, "
                    f"{figures['per_second']} tasks/s, {figures['errors']} errors; CPU ms per task: head "
                    f"{cpu['head']} ({cpu['head_by_process']}), workers {cpu['workers']}; "
                    f"load average {figures['load_average']}",
                    flush=True,
                )
                if nodes not in best or figures["per_second"] > best[nodes]["per_second"]:
                    best[nodes] = figures
            cluster.kill_node(f"worker-2.{round_}")  # idle: nothing is lost
        return {"runs": best, "ratio": round(best[2]["per_second"] / best[1]["per_second"], 2)}
    finally:
        cluster.close()
        origin.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small batch (40 images, 4 videos), for the tests")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument(
        "--width",
        type=int,
        default=1200,
        help="thumbnail box, px: 1200 (a display-size preview) is a full decode and a large encode",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated (1 node, 2 nodes) rounds; best of each")
    parser.add_argument("--no-binding", action="store_true", help="every task to Ray unbound as it starts")
    parser.add_argument(
        "--sleep",
        type=float,
        default=0.0,
        help="instead of thumbnails, images + videos test.where tasks (1 CPU) that sleep this long",
    )
    parser.add_argument("--node-cpus", type=int, default=1, help="CPUs each worker node offers")
    args = parser.parse_args(argv)
    images, videos, warmup, rounds = (40, 4, 8, 1) if args.quick else (args.images, args.videos, 16, args.rounds)
    work = (
        f"{images + videos} test.where sleeping {args.sleep} s"
        if args.sleep
        else f"{images} image.thumb (box {args.width} px) + {videos} video.thumb"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; batch: "
        f"{work}; worker nodes of {args.node_cpus} CPU on a core each, head with no task CPU; "
        f"tasks bound to nodes: {not args.no_binding}",
        flush=True,
    )
    figures = measure(images, args.width, videos, warmup, rounds, not args.no_binding, args.sleep, args.node_cpus)
    print(f"best of each: 2 nodes / 1 node: {figures['ratio']}x")
    return figures


if __name__ == "__main__":
    main()
