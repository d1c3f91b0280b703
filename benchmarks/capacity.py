"""What the control plane costs per task, by process, on a simulated many-node cluster,
and which component saturates first (the capacity model of docs/deployment.md).

A real multi-node Ray cluster on this machine (tests/support/cluster.py): a head with no
task CPU holding the service (`dragon serve --address`), and ``--nodes`` worker nodes of
``--cpus`` (simulated) CPUs each; they all share this machine's cores, so the point is
not the throughput but the CPU each process spends per task. ``--clients`` clients create
``hello`` tasks in requests of ``--per-request`` for ``--seconds``, then wait for all.
Hello tasks are tiny, so the shards run them in groups (one Ray task for many);
``--task thumb`` creates image.thumb tasks of a 640x480 JPEG (served on loopback) instead,
each its own Ray task with a fetch and a stored output: the control plane's cost of an
ordinary task.

Each single-threaded process (a shard, an API replica, the GCS, a raylet) saturates at
1000 / (its ms per task) tasks/s: the projection says which one binds first, and how
the figures scale with shards, replicas and worker nodes.

    python benchmarks/capacity.py [--nodes 8] [--shards 2] [--seconds 20] [--postgres] [--task hello|thumb]
                                  [--no-binding] [--control-nodes N --postgres] [--replica-cpus 0.25] [--idle 10]

Each process's CPU is also measured over ``--idle`` seconds before the load, and the
part of its per-task figure that it spends idle too (Serve's controller polling, Ray's
heartbeats and dashboard: a rate per second, not a cost per task) is shown beside it; the
ceilings are from what is left. Totals are split by whose process it is: Ray's own
(GCS, raylet, dashboard, agents), the service's (shards, Serve, the storage actor, the
`dragon serve` driver) and the tasks'. ``--replica-cpus 0.25`` (Dragon's default) keeps
the API replica off a head that offers no CPU.

With ``--control-nodes N`` (and PostgreSQL) the shards run on N nodes of their own that
offer ``dragon_control`` and no task CPU, as docs/deployment.md advises for large
clusters; their processes are listed under "control", and the head keeps Ray's and
Serve's share only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.cluster import LocalCluster  # noqa: E402
from tests.support.servers import Origin, PostgresServer  # noqa: E402
from tests.support.service import DragonProcess, cpu_seconds  # noqa: E402

MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media")  # as tests/conftest.py
TASKS = {
    "hello": lambda origin: {"task_name": "hello", "name": "capacity"},
    "thumb": lambda origin: {
        "task_name": "image.thumb",
        "url": f"{origin}/images_exif/exif_samples/gps_DSCN0010.jpg",
        "width": 160,
        "height": 120,
    },
}
ROLES = (  # (role, what the process's name contains, whose), first match wins
    ("shard", "ray::TaskShard", "service"),
    ("api replica", "ServeReplica", "service"),
    ("serve proxy", "ProxyActor", "service"),
    ("serve controller", "ServeController", "service"),
    ("storage actor", "ray::StorageActor", "service"),
    ("control actor", "ray::Control", "service"),
    ("dragon serve", "dragon serve", "service"),
    ("task worker", "ray::execute", "tasks"),
    ("idle worker", "ray::IDLE", "tasks"),
    ("gcs", "gcs_server", "ray"),
    ("raylet", "raylet", "ray"),
    ("dashboard", "dashboard.py", "ray"),
    ("ray agents", "Agent", "ray"),  # ray::DashboardAgent, ray::RuntimeEnvAgent: one of each per node
    ("ray monitors", "monitor", "ray"),  # log_monitor.py on every node, the autoscaler's monitor.py
    ("ray client server", "ray.util.client.server", "ray"),
)
WHOSE = {role: whose for role, _, whose in ROLES}


def role_of(name: str) -> str:
    return next((role for role, title, _ in ROLES if title in name), "other")


def load(url: str, secret: str, clients: int, per_request: int, seconds: float, task: dict[str, Any]) -> list[str]:
    """Creates from ``clients`` threads for ``seconds``; every key created."""
    keys: list[str] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client() -> None:
        http = httpx.Client(base_url=url, timeout=120)
        tasks = [task] * per_request
        while time.monotonic() < stop:
            r = http.post("/v2/create", json={"secret": secret, "tasks": tasks})
            r.raise_for_status()
            with lock:
                keys.extend(s["key"] for s in r.json())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return keys


def wait_all(url: str, keys: list[str]) -> None:
    http = httpx.Client(base_url=url, timeout=300)
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        while True:
            statuses = http.post("/v2/status", json={"tasks": chunk, "block": True}).json()
            if all(s["status"] in ("success", "error") for s in statuses):
                break


def measure(
    nodes: int,
    cpus: int,
    shards: int,
    clients: int,
    per_request: int,
    seconds: float,
    postgres: bool,
    kind: str,
    binding: bool = True,
    control_nodes: int = 0,
    replica_cpus: float = 0.0,
    idle_seconds: float = 10.0,
) -> dict[str, Any]:
    """CPU ms per task by (where, role) over the run, and the part of it that the same
    processes spend when idle (``idle_seconds`` measured before the load, at the same
    rate over the run's length): polling and heartbeats, spread over the tasks."""
    work = Path(tempfile.mkdtemp(prefix="dragon-capacity-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DRAGON_", "RAY_"))},
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_API_REPLICA_CPUS": str(replica_cpus),
        "DRAGON_SHARDS": str(shards),
        "DRAGON_BLOCK_TIMEOUT": "30",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",  # the thumb's input is on loopback
        "DRAGON_BIND_TASKS_TO_NODES": "true" if binding else "false",
    }
    origin = Origin(MEDIA)
    task = TASKS[kind](origin.url)
    db = PostgresServer() if postgres else None
    if db is not None:
        env["DRAGON_JOURNAL_DSN"] = db.new_database()
    cluster = LocalCluster(work, env, head_cpus=0)
    try:
        for i in range(nodes):
            cluster.add_node(f"worker-{i}", cpus=cpus)
        for i in range(control_nodes):  # where the shards go with PostgreSQL (dragon/placement.py)
            cluster.add_node(f"control-{i}", cpus=0, resources={"dragon_control": 1})
        service = DragonProcess(work / "data", {**env, "DRAGON_RAY_ADDRESS": cluster.address})
        service.data_dir.mkdir()
        secret = service.cli("accounts", "create", "bench", "--max-concurrent-tasks", "100000")["secret"]
        service.start()
        wait_all(service.url, load(service.url, secret, 2, 50, 3, task))  # warm workers and connections
        time.sleep(5)  # the warm-up's tail (statuses, idle workers) settles
        driver = service.proc.pid if service.proc is not None else None

        def readings() -> dict[int, tuple[str, str, float]]:
            """Every cluster process, and `dragon serve` (a driver of the cluster, on the head)."""
            found = cluster.cpu_times()
            if driver is not None:
                found[driver] = ("head", "dragon serve", cpu_seconds(driver))
            return found

        idle_before = readings()
        time.sleep(idle_seconds)
        idle_after = readings()
        before = readings()
        started = time.monotonic()
        keys = load(service.url, secret, clients, per_request, seconds, task)
        wait_all(service.url, keys)
        elapsed = time.monotonic() - started
        after = readings()
    finally:
        cluster.close()
        origin.close()
        if db is not None:
            db.close()
        shutil.rmtree(work, ignore_errors=True)
    processes: dict[tuple[str, str], set[int]] = {}
    spent = _spent(before, after, processes)
    idle = _spent(idle_before, idle_after, {})
    tasks = len(keys)
    rows = sorted(
        (
            (
                where,
                role,
                1000 * s / tasks,
                1000 * idle.get((where, role), 0.0) * elapsed / idle_seconds / tasks,
                len(pids),
            )
            for (where, role), pids in processes.items()
            if (s := spent.get((where, role), 0.0))
        ),
        key=lambda row: -row[2],
    )
    return {"tasks": tasks, "seconds": round(elapsed, 1), "per_second": round(tasks / elapsed, 1), "rows": rows}


def _spent(
    before: dict[int, tuple[str, str, float]],
    after: dict[int, tuple[str, str, float]],
    processes: dict[tuple[str, str], set[int]],
) -> dict[tuple[str, str], float]:
    """CPU seconds spent between two readings by (where, role); fills ``processes``."""
    spent: dict[tuple[str, str], float] = {}
    for pid, (node, name, used) in after.items():
        key = ("head" if node == "head" else "control" if node.startswith("control-") else "workers", role_of(name))
        spent[key] = spent.get(key, 0.0) + used - (before[pid][2] if pid in before else 0.0)
        processes.setdefault(key, set()).add(pid)
    return spent


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=4, help="simulated CPUs per worker node")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--postgres", action="store_true", help="the journal on PostgreSQL (else SQLite)")
    parser.add_argument("--task", choices=sorted(TASKS), default="hello")
    parser.add_argument("--no-binding", action="store_true", help="every task to Ray unbound as it starts")
    parser.add_argument(
        "--control-nodes",
        type=int,
        default=0,
        help="nodes of no task CPU offering dragon_control, where the shards run (needs --postgres)",
    )
    parser.add_argument(
        "--replica-cpus",
        type=float,
        default=0.0,
        help="CPUs the API replica asks for (Dragon's default is 0.25: never on a head with no CPUs)",
    )
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measured before the load")
    args = parser.parse_args(argv)
    if args.control_nodes and not args.postgres:
        parser.error("--control-nodes needs --postgres: with SQLite the shards stay on the head")
    figures = measure(
        args.nodes,
        args.cpus,
        args.shards,
        args.clients,
        args.per_request,
        args.seconds,
        args.postgres,
        args.task,
        not args.no_binding,
        args.control_nodes,
        args.replica_cpus,
        args.idle,
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.nodes} worker nodes x {args.cpus} simulated CPUs, {args.shards} shards"
        f"{f' on {args.control_nodes} control nodes' if args.control_nodes else ''}, journal "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}; tasks bound to nodes: {not args.no_binding}; "
        f"API replica asks {args.replica_cpus} CPU"
    )
    print(
        f"{figures['tasks']} {args.task} tasks in {figures['seconds']} s ({figures['per_second']} tasks/s on this machine)"
    )
    print(
        f"{'where':8} {'process':18} {'procs':>5} {'CPU ms/task':>12} {'of which idle':>14} {'saturates at (tasks/s)':>24}"
    )
    for where, role, ms, fixed, count in figures["rows"]:
        if ms >= 0.01:
            single = role in ("shard", "api replica", "gcs", "raylet", "serve proxy", "storage actor")
            ceiling = f"{1000 * count / (ms - fixed):,.0f}" if single and ms > fixed else "-"
            print(f"{where:8} {role:18} {count:5d} {ms:12.2f} {fixed:14.2f} {ceiling:>24}")
    totals: dict[tuple[str, str], list[float]] = {}
    for where, role, ms, fixed, _ in figures["rows"]:
        total = totals.setdefault((where, WHOSE.get(role, "other")), [0.0, 0.0])
        total[0] += ms
        total[1] += fixed
    for (where, whose), (ms, fixed) in sorted(totals.items()):
        print(f"{where} total, {whose}'s: {ms:.2f} ms per task, {fixed:.2f} of it spent idle too")
    return figures


if __name__ == "__main__":
    main()
