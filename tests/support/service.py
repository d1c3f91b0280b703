"""`dragon serve` as a user runs it, in a subprocess: for the tests and the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.servers import free_port, signal_all

ROOT = Path(__file__).resolve().parent.parent.parent


def ask_ray(address: str, env: dict[str, str], expression: str, timeout: float = 120) -> Any:
    """The JSON value of a Python ``expression`` evaluated by a driver of the Ray cluster at
    ``address`` (``json``, ``ray`` and ``internal_api`` imported), in a separate process so
    the test process never joins a cluster."""
    script = (
        "import json, ray; from ray._private import internal_api; "
        f"ray.init(address={address!r}, namespace='dragon', logging_level='ERROR', log_to_driver=False); "
        f"print(json.dumps({expression}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


class DragonProcess:
    """`dragon serve` as a user runs it; can be stopped and started on the same data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Ray's processes inherit this, so a test can tell this service's processes apart.
        self.marker = f"DRAGON_TEST_INSTANCE={self.port}"
        self.env = {**env, "DRAGON_TEST_INSTANCE": str(self.port)}
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self.ray_address = ""

    def start(self, timeout: float = 180) -> None:
        log = open(self.data_dir.parent / "serve.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dragon", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"dragon serve exited with {self.proc.wait()}; see {log.name}")
            self.output.append(line.rstrip("\n"))
            if line.startswith("Ray cluster: "):
                self.ray_address = line.split(": ", 1)[1].strip()
            if line.startswith("Dragon is serving on"):
                threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
                return
        raise TimeoutError("dragon serve did not start in time")

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.output.append(line.rstrip("\n"))

    def stop(self, timeout: float = 60) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self.proc = None

    def kill(self, timeout: float = 60) -> None:
        """Every process of this service killed at once, as a lost head node: `dragon serve`
        and its whole Ray cluster (GCS, raylet, actors, workers), with SIGKILL."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while pids := self.pids(""):
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes {pids} of the service outlived SIGKILL")
            signal_all(pids)
            time.sleep(0.1)
        self.proc.wait(timeout)
        self.proc = None

    def pids(self, title: str) -> list[int]:
        """Processes of this service whose title contains ``title`` (e.g. a Ray actor's)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                environ = (proc / "environ").read_bytes().split(b"\0")
                if title in (proc / "cmdline").read_text() and self.marker.encode() in environ:
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

    def peak_memory_kib(self, title: str) -> dict[int, int]:
        """pid -> peak resident memory so far (VmHWM, KiB) of this service's processes titled ``title``."""
        peaks = {}
        for pid in self.pids(title):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            peaks[pid] = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return peaks

    def object_store_created_bytes(self) -> int:
        """Bytes ever put into Ray's object store, summed over the cluster's nodes."""
        return int(
            ask_ray(
                self.ray_address,
                self.env,
                "sum(internal_api.node_stats(n['NodeManagerAddress'], n['NodeManagerPort'])"
                ".store_stats.cumulative_created_bytes for n in ray.nodes() if n['Alive'])",
            )
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "dragon", *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return json.loads(done.stdout)


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far (user and system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
