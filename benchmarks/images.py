"""image.thumb against vipsthumbnail, in one run, on the same generated 12 MP JPEG.

Times (best of 5): the image.thumb task function itself (fetch and store stubbed to
local files), vipsthumbnail (Debian libvips-tools) making the same 320x240 fit, and
image.thumb through the HTTP API with block=true. Then throughput: the task function
on every core (a process per core) against the API with 16 concurrent clients.

    python benchmarks/images.py [--tasks 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import Service, running_service  # noqa: E402
from dragon.config import Settings  # noqa: E402
from dragon.registry import TaskContext  # noqa: E402
from dragon.storage.fetch import Fetched  # noqa: E402
from dragon.tasks.image import ThumbParams, image_thumb  # noqa: E402
from tests.support.servers import Origin  # noqa: E402

BOX = (320, 240)


class LocalIO:
    """The task's I/O with the network and storage taken out: what is timed is decoding,
    resizing and encoding, as vipsthumbnail does."""

    def __init__(self, source: Path):
        self.source = source

    def fetch(self, url: str, max_bytes: int | None = None, truncate: bool = False) -> Fetched:
        return Fetched(self.source, self.source.stat().st_size, "image/jpeg")

    def local(self, url: str) -> Path | None:
        return None

    def store(self, path: Path, extension: str, content_type: str, main: bool = True) -> str:
        return str(path)

    def report(self, progress: Any, partial_result: Any) -> None:
        pass


def task_function(source: str) -> float:
    scratch = Path(tempfile.mkdtemp())
    ctx = TaskContext("BENCH", "bench", 1, scratch, LocalIO(Path(source)), Settings(), {"type": "persistent"})
    t = time.perf_counter()
    image_thumb(ctx, ThumbParams(url="file", width=BOX[0], height=BOX[1]))
    elapsed = time.perf_counter() - t
    shutil.rmtree(scratch)
    return elapsed


def make_source(path: Path) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:3000, 0:4000]
    base = np.stack([(x / 16) % 256, (y / 12) % 256, ((x + y) / 28) % 256], axis=-1)
    noise = rng.normal(0, 18, base.shape)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=128, help="thumbnails per side in the throughput runs")
    args = parser.parse_args()
    vips = shutil.which("vipsthumbnail")
    if vips is None:
        sys.exit("vipsthumbnail is needed as the reference (apt-get install libvips-tools)")
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-images-"))
    source = work / "12mp.jpg"
    make_source(source)

    def vips_once() -> float:
        t = time.perf_counter()
        subprocess.run([vips, str(source), "-s", f"{BOX[0]}x{BOX[1]}", "-o", str(work / "vips.jpg")], check=True)
        return time.perf_counter() - t

    ours = min(task_function(str(source)) for _ in range(5))
    ref = min(vips_once() for _ in range(5))

    origin = Origin(work)
    try:
        with running_service() as service:
            api, fn_rate, api_rate, cores = through_api(service, origin, source, args.tasks)
    finally:
        origin.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'12 MP JPEG -> 320x240 fit':40} {'seconds':>9} {'vs vips':>8}")
    print(f"{'image.thumb task function':40} {ours:9.4f} {ours / ref:8.2f}")
    print(f"{'vipsthumbnail':40} {ref:9.4f} {1:8.2f}")
    print(f"{'image.thumb via HTTP, block=true':40} {api:9.4f} {api / ref:8.2f}")
    print(
        f"throughput: task function on {cores} processes {fn_rate:.1f}/s, "
        f"API with 16 clients {api_rate:.1f}/s, ratio {api_rate / fn_rate:.2f}"
    )


def through_api(service: Service, origin: Origin, source: Path, n: int) -> tuple[float, float, float, int]:
    """Latency through HTTP, then throughput: the task function on every core against the
    API with 16 concurrent clients."""
    http = httpx.Client(base_url=service.url, timeout=600)
    body = {
        "secret": service.secret,
        "block": True,
        "tasks": {"task_name": "image.thumb", "url": f"{origin.url}/12mp.jpg", "width": BOX[0], "height": BOX[1]},
    }

    def api_once(client: httpx.Client = http) -> float:
        t = time.perf_counter()
        [status] = client.post("/v2/create", json=body).json()
        assert status["status"] == "success", status
        return time.perf_counter() - t

    api_once()
    api = min(api_once() for _ in range(5))

    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(task_function, [str(source)] * cores))
        t = time.perf_counter()
        list(pool.map(task_function, [str(source)] * n))
        fn_rate = n / (time.perf_counter() - t)
    clients = [httpx.Client(base_url=service.url, timeout=600) for _ in range(16)]
    with ThreadPoolExecutor(16) as threads:
        # Warmed as the processes above are: one round at full concurrency first, so that
        # Ray's worker processes for concurrent tasks are started before timing.
        list(threads.map(lambda i: api_once(clients[i]), range(16)))
        t = time.perf_counter()
        list(threads.map(lambda i: api_once(clients[i % 16]), range(n)))
        api_rate = n / (time.perf_counter() - t)
    return api, fn_rate, api_rate, cores


if __name__ == "__main__":
    main()
