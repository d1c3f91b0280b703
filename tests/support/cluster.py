"""A multi-node Ray cluster on this one machine, for the cluster tests and benchmarks.

Each node is a real `ray start` (head, or worker with ``--address``): its own raylet,
object store and worker processes, with its own CPUs, GPUs and custom resources. Every
process of a node carries ``DRAGON_TEST_NODE=<cluster port>/<node name>`` in its
environment, so a test can kill exactly one node (what a machine failure looks like
to Ray) and the teardown kills exactly this cluster, never another Ray on the machine.

With ``autoscaling`` (a list of worker node types), the head runs Ray's autoscaler with
the fake multi-node provider, which starts and stops worker nodes as local processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dragon.config import RAY_ENVIRONMENT
from tests.support.servers import free_port, signal_all
from tests.support.service import ask_ray, cpu_seconds

RAY = str(Path(sys.executable).parent / "ray")
MARKER = "DRAGON_TEST_NODE"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """The first truthy value of ``predicate``; TimeoutError(what) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(what)


@dataclass(frozen=True)
class NodeType:
    """A worker node type the fake autoscaler may start (between 0 and ``max_workers``)."""

    name: str
    resources: dict[str, float]
    max_workers: int = 1


def _autoscaling_config(gcs_address: str, head_cpus: int, types: list[NodeType], idle_timeout_minutes: float) -> dict:
    """The fake_multinode provider's cluster config (the example.yaml that the wheel lacks)."""
    nodes: dict[str, Any] = {"ray.head.default": {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0}}
    for t in types:
        nodes[t.name] = {"resources": t.resources, "node_config": {}, "min_workers": 0, "max_workers": t.max_workers}
    return {
        "cluster_name": "dragon-fake",
        "max_workers": sum(t.max_workers for t in types),
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "available_node_types": nodes,
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        **{
            key: []
            for key in (
                "initialization_commands",
                "setup_commands",
                "head_setup_commands",
                "worker_setup_commands",
                "head_start_ray_commands",
                "worker_start_ray_commands",
                "cluster_synced_files",
                "rsync_exclude",
                "rsync_filter",
            )
        },
        "file_mounts": {},
        "file_mounts_sync_continuously": False,
    }


class LocalCluster:
    """A head node and any number of named worker nodes, all on loopback."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        head_cpus: int = 0,
        head_gpus: int | None = None,
        head_resources: dict[str, float] | None = None,
        autoscaling: list[NodeType] | None = None,
        idle_timeout_minutes: float = 0.1,
    ):
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(
            tempfile.mkdtemp(prefix="ray-", dir="/tmp")
        )  # short: socket paths are limited to 107 bytes
        # Every node has the Ray settings Dragon's deployments give their nodes (what
        # cluster.yaml's nodes read from dragon.env), unless ``env`` says otherwise; a
        # dead node is declared dead after about 3 s instead of 30.
        self.env = {
            **RAY_ENVIRONMENT,
            **env,
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        }
        self.nodes: list[str] = []
        args = [
            "--head",
            f"--port={self.port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-port={free_port()}",
            "--include-dashboard=false",
        ]
        if head_resources:
            args.append(f"--resources={json.dumps(head_resources)}")
        extra_env = {}
        if autoscaling is not None:
            config = workdir / "autoscaling.json"
            config.write_text(
                json.dumps(_autoscaling_config(self.address, head_cpus, autoscaling, idle_timeout_minutes))
            )
            args.append(f"--autoscaling-config={config}")
            extra_env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        args += [f"--num-cpus={head_cpus}", f"--temp-dir={self.temp_dir}"]
        if head_gpus is not None:  # else Ray counts the machine's
            args.append(f"--num-gpus={head_gpus}")
        self._start("head", args, extra_env)

    def _start(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None, cores: list[int] | None = None
    ) -> None:
        env = {**self.env, **(extra_env or {}), MARKER: f"{self.port}/{name}"}
        common = [
            "--node-ip-address=127.0.0.1",
            "--dashboard-agent-listen-port=0",
            "--disable-usage-stats",
            f"--labels=dragon-test-node={name}",
        ]
        pin = ["taskset", "-c", ",".join(map(str, cores))] if cores else []
        done = subprocess.run(
            [*pin, RAY, "start", *args, *common],
            env=env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            self.close()
            raise RuntimeError(f"ray start for node {name} failed:\n{done.stdout}\n{done.stderr}")
        self.nodes.append(name)

    def add_node(
        self,
        name: str,
        cpus: int = 1,
        gpus: int = 0,
        resources: dict[str, float] | None = None,
        cores: list[int] | None = None,
    ) -> None:
        """Start a worker node and return once it has joined. With ``cores``, its processes
        run only on those CPU cores (taskset), as they would on a machine of their own."""
        args = [f"--address={self.address}", f"--num-cpus={cpus}", f"--num-gpus={gpus}"]
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        self._start(name, args, cores=cores)

    def pids(self, node: str | None = None, title: str = "") -> list[int]:
        """Processes of one node (or of the whole cluster): raylet, agents, workers;
        only those whose command line contains ``title`` (e.g. an actor's, "ray::TaskShard")."""
        return [pid for pid, name in self.processes(title) if node is None or name == node]

    def processes(self, title: str = "") -> list[tuple[int, str]]:
        """(pid, node name) of every process of this cluster whose command line contains ``title``."""
        prefix = f"{MARKER}={self.port}/".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if title and title.encode() not in (proc / "cmdline").read_bytes():
                    continue
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            for entry in environ.split(b"\0"):
                if entry.startswith(prefix):
                    found.append((int(proc.name), entry[len(prefix) :].decode()))
        return found

    def cpu_times(self) -> dict[int, tuple[str, str, float]]:
        """pid -> (node, process name, CPU seconds used so far) for every process of this
        cluster: the difference of two readings is what each spent in between."""
        times = {}
        for pid, node in self.processes():
            try:
                seconds = cpu_seconds(pid)
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            times[pid] = (node, _process_name(argv), seconds)
        return times

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The nodes Ray counts alive: ``{"node_id", "resources", "labels"}`` each."""
        return self.ask(
            "[{'node_id': n['NodeID'], 'resources': n['Resources'], 'labels': n['Labels']} "
            "for n in ray.nodes() if n['Alive']]"
        )

    def ask(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated by a driver of this cluster (ask_ray)."""
        return ask_ray(self.address, self.env, expression)

    def kill_node(self, name: str) -> None:
        """SIGKILL every process of a worker node at once: the machine is gone."""
        signal_all(self.pids(name))  # the node's processes, found before any of them dies
        self.nodes.remove(name)

    def close(self) -> None:
        """Kill every process of this cluster and remove its temporary directory."""
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            signal_all(pids)
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _process_name(argv: list[str]) -> str:
    """An actor's or task's title ("ray::TaskShard"); for a Python program, its script or
    module ("agent.py", "dashboard.py", "dragon"), so Ray's agents and the service's driver
    are told apart; else the program's name ("gcs_server", "raylet")."""
    first = argv[0] if argv else "?"
    if first.startswith("ray::"):
        return first
    program = Path(first.split()[0] if first else "?").name
    if program.startswith("python"):
        for i, arg in enumerate(argv[1:], 1):
            if arg == "-m" and i + 1 < len(argv):
                return argv[i + 1]
            if not arg.startswith("-"):
                return Path(arg).name
    return program
