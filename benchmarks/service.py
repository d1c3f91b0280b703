"""`dragon serve` on a temporary data dir, for the benchmarks that go through the API."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster import LocalCluster
from tests.support.service import ROOT, DragonProcess


@dataclass(frozen=True)
class Service:
    url: str
    secret: str
    ray_address: str
    process: DragonProcess


@contextlib.contextmanager
def running_service(env: dict[str, str] | None = None, worker_nodes: int = 0) -> Iterator[Service]:
    """A fresh service with a "bench" account; private URLs allowed, for loopback inputs.
    With ``worker_nodes``, on a cluster of a head with no task CPU and that many worker
    nodes of 1 CPU, each pinned to a core of its own where the machine has enough
    (tests/support/cluster.py)."""
    base = Path(tempfile.mkdtemp(prefix="dragon-bench-"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    cluster = None
    if worker_nodes:
        cluster = LocalCluster(base, env, head_cpus=0)
        for i in range(worker_nodes):
            cluster.add_node(f"worker-{i + 1}", cpus=1, cores=[i % (os.cpu_count() or 1)])
        env |= {"DRAGON_RAY_ADDRESS": cluster.address, "DRAGON_API_REPLICA_CPUS": "0"}
    process = DragonProcess(base / "data", env)
    try:
        process.data_dir.mkdir(parents=True, exist_ok=True)
        secret = process.cli("accounts", "create", "bench")["secret"]
        process.start()
        yield Service(process.url, secret, process.ray_address, process)
    finally:
        if process.proc is not None:
            process.stop()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(base, ignore_errors=True)
