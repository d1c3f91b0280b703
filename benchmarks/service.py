"""`dragon serve` on a temporary data dir, for the benchmarks that go through the API."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.service import ROOT, DragonProcess


@dataclass(frozen=True)
class Service:
    url: str
    secret: str
    ray_address: str
    process: DragonProcess


@contextlib.contextmanager
def running_service(env: dict[str, str] | None = None) -> Iterator[Service]:
    """A fresh service with a "bench" account; private URLs allowed, for loopback inputs."""
    base = Path(tempfile.mkdtemp(prefix="dragon-bench-"))
    process = DragonProcess(
        base / "data",
        {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            "DRAGON_ALLOW_PRIVATE_URLS": "1",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        },
    )
    secret = process.cli("accounts", "create", "bench")["secret"]
    process.start()
    try:
        yield Service(process.url, secret, process.ray_address, process)
    finally:
        if process.proc is not None:
            process.stop()
        shutil.rmtree(base, ignore_errors=True)
