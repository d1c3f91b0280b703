"""Download-and-store throughput against a plain `curl` of the same URL, in one run.

Starts `dragon serve` (local storage) with the test suite's `test.copy` task, which
fetches a URL through the safe fetcher and stores it through a storage actor; serves
1 MB and 100 MB files from a loopback origin; times each way three times, best kept.

    python benchmarks/storage.py
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import Origin, free_port  # noqa: E402

SIZES = {"1 MB": 1_000_000, "100 MB": 100_000_000}


def main() -> None:
    if shutil.which("curl") is None:
        sys.exit("curl is needed as the reference (apt-get install curl)")
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-storage-"))
    origin = Origin(work)
    urls = {label: origin.add(f"{size}.bin", os.urandom(size)) for label, size in SIZES.items()}
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
    }
    data = work / "data"
    cmd = [sys.executable, "-m", "dragon"]
    secret = json.loads(
        subprocess.run(
            [*cmd, "accounts", "create", "bench", "--data-dir", str(data)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["secret"]
    port = free_port()
    server = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in server.stdout:  # type: ignore[union-attr]
            if line.startswith("Dragon is serving"):
                break
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)

        def dragon(url: str) -> float:
            t = time.perf_counter()
            body = {"secret": secret, "tasks": {"task_name": "test.copy", "url": url}, "block": True}
            [status] = http.post("/v2/create", json=body).json()
            assert status["status"] == "success", status
            return time.perf_counter() - t

        def curl(url: str) -> float:
            t = time.perf_counter()
            subprocess.run(["curl", "-sf", "-o", str(work / "curl.out"), url], check=True)
            return time.perf_counter() - t

        dragon(urls["1 MB"])  # warm up a worker
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"{'file':8} {'dragon MB/s':>12} {'curl MB/s':>10} {'ratio':>7}")
        for label, size in SIZES.items():
            ours = min(dragon(urls[label]) for _ in range(3))
            ref = min(curl(urls[label]) for _ in range(3))
            print(f"{label:8} {size / ours / 1e6:12.1f} {size / ref / 1e6:10.1f} {ref / ours:7.2f}")
    finally:
        server.terminate()
        server.wait(60)
        origin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
