"""One real Dragon service per test session: `dragon serve` on a local Ray cluster,
spoken to over HTTP on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.platforms import Platforms
from tests.support.servers import Origin, SeaweedS3, free_port

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"


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

    def pids(self, title: str) -> list[int]:
        """Processes of this service whose title contains ``title`` (e.g. a Ray actor's)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if title in (proc / "cmdline").read_text() and self.marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

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


@pytest.fixture(scope="session")
def platforms() -> Iterator[Platforms]:
    """Local YouTube, Facebook and Vimeo that the service uploads to."""
    server = Platforms()
    yield server
    server.close()


@pytest.fixture(scope="session")
def dragon(tmp_path_factory: pytest.TempPathFactory, platforms: Platforms) -> Iterator[DragonProcess]:
    base = tmp_path_factory.mktemp("dragon")
    env = {
        **os.environ,
        **platforms.settings(),
        "DRAGON_UPLOAD_CHUNK_BYTES": str(256 * 1024),  # several chunks per test video
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
        "DRAGON_BLOCK_TIMEOUT": "8",
        "DRAGON_STATUS_SHARDS": "2",  # exercise routing by key across shards
        "DRAGON_STREAM_POLL_TIMEOUT": "2",
        "DRAGON_SWEEP_INTERVAL": "1",
        "DRAGON_VOLATILE_DAYS": "0.0001",  # about 9 s, so the sweeper can be seen at work
        "DRAGON_FETCH_READ_TIMEOUT": "3",
        "DRAGON_FETCH_TOTAL_TIMEOUT": "6",
        "DRAGON_CALLBACK_BACKOFF": "0.2",
        "DRAGON_CALLBACK_BACKOFF_MAX": "1",
        "DRAGON_CALLBACK_RETRY_PERIOD": "60",
    }
    service = DragonProcess(base / "data", env)
    service.start()
    try:
        yield service
    finally:
        if service.proc is not None:
            service.stop()


class Api:
    """Thin HTTP helpers; tests still see raw responses where the format matters."""

    def __init__(self, url: str, secret: str):
        self.url = url
        self.secret = secret
        self.http = httpx.Client(base_url=url, timeout=60)

    def create(self, tasks: Any, block: bool = False, **extra: Any) -> list[dict[str, Any]]:
        r = self.http.post("/v2/create", json={"secret": self.secret, "tasks": tasks, "block": block, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """One task, created with block=true: its final status."""
        [status] = self.create(task, block=True)
        return status

    def result(self, task: dict[str, Any]) -> dict[str, Any]:
        """One task that must succeed: its result."""
        status = self.run(task)
        assert status["status"] == "success", status.get("error")
        return status["result"]

    def status(self, keys: list[str], **params: Any) -> list[dict[str, Any]]:
        r = self.http.get("/v2/status", params={"tasks": keys, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, keys: list[str], timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.status(keys, block="true")
            if all(s["status"] in ("success", "error") for s in statuses) or time.monotonic() > deadline:
                return statuses

    def wait_for(self, key: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            [status] = self.status([key])
            if status["status"] == state:
                return status
            time.sleep(0.05)
        raise TimeoutError(f"{key} never reached {state}")


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    server = Origin(tmp_path_factory.mktemp("origin"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def media() -> Iterator[Origin]:
    """../shared/media served read-only on loopback."""
    server = Origin(MEDIA)
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory, dragon: DragonProcess, s3: SeaweedS3) -> Iterator[Api]:
    """A second service with the production defaults: private addresses refused,
    outputs on S3 (SeaweedFS)."""
    env = {
        **{k: v for k, v in dragon.env.items() if k != "DRAGON_TEST_INSTANCE"},
        "DRAGON_ALLOW_PRIVATE_URLS": "0",
        "DRAGON_STORAGE_BACKEND": "s3",
        "DRAGON_S3_ENDPOINT_URL": s3.endpoint,
        "DRAGON_S3_BUCKET": s3.bucket,
        "DRAGON_S3_PREFIX": "outputs",
        "DRAGON_S3_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "DRAGON_S3_SECRET_ACCESS_KEY": s3.SECRET_KEY,
    }
    service = DragonProcess(tmp_path_factory.mktemp("guarded") / "data", env)
    account = service.cli("accounts", "create", "carol")
    service.start()
    yield Api(service.url, account["secret"])
    service.stop()


@pytest.fixture(scope="session")
def account(dragon: DragonProcess) -> dict[str, Any]:
    return dragon.cli("accounts", "create", "alice", "--referrer", "https://app.example.com/*")


@pytest.fixture(scope="session")
def api(dragon: DragonProcess, account: dict[str, Any]) -> Api:
    return Api(dragon.url, account["secret"])
