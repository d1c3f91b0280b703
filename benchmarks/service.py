"""`dragon serve` on a temporary data dir, for the benchmarks that go through the API."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.support.servers import free_port


@dataclass(frozen=True)
class Service:
    url: str
    secret: str
    ray_address: str
    env: dict[str, str]


@contextlib.contextmanager
def running_service() -> Iterator[Service]:
    """A fresh service with a "bench" account; private URLs allowed, for loopback inputs."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "DRAGON_ALLOW_PRIVATE_URLS": "1"}
    data = Path(tempfile.mkdtemp(prefix="dragon-bench-"))
    cmd = [sys.executable, "-m", "dragon"]
    secret = json.loads(subprocess.run([*cmd, "accounts", "create", "bench", "--data-dir", str(data)],
                                       env=env, capture_output=True, text=True, check=True).stdout)["secret"]
    port = free_port()
    server = subprocess.Popen([*cmd, "serve", "--port", str(port), "--data-dir", str(data)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = ""
    try:
        for line in server.stdout:  # type: ignore[union-attr]
            if line.startswith("Ray cluster: "):
                address = line.split(": ", 1)[1].strip()
            if line.startswith("Dragon is serving"):
                break
        yield Service(f"http://127.0.0.1:{port}", secret, address, env)
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(data, ignore_errors=True)
