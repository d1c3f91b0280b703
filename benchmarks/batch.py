"""Batch image.thumb against the same items as individual tasks through the HTTP API.

Starts `dragon serve`, serves N generated 640x480 JPEGs from loopback, then in one run:
  1. individual tasks: N POST /v2/create (block=true), 16 clients at once;
  2. one create holding all N tasks, then a blocking status until all have ended;
  3. one POST /v2/batch over a CSV manifest of the same N URLs, until its status ends.
Prints items per second and the batch's ratio to each.

    python benchmarks/batch.py [--items 400]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import running_service  # noqa: E402
from tests.support.servers import Origin  # noqa: E402


def make_images(root: Path, count: int) -> None:
    rng = np.random.default_rng(3)
    for i in range(count):
        pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
        (root / f"img-{i}.jpg").write_bytes(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-batch-"))
    make_images(work, args.items)
    origin = Origin(work)
    urls = [f"{origin.url}/img-{i}.jpg" for i in range(args.items)]
    manifest = origin.add("manifest.csv", ("url\n" + "\n".join(urls)).encode())
    try:
        with running_service() as service:
            http = httpx.Client(base_url=service.url, timeout=600)
            secret = service.secret

            def one(url: str, client: httpx.Client) -> None:
                body = {
                    "secret": secret,
                    "block": True,
                    "tasks": {"task_name": "image.thumb", "url": url, "width": 128},
                }
                [status] = client.post("/v2/create", json=body).json()
                assert status["status"] == "success", status

            clients = [httpx.Client(base_url=service.url, timeout=600) for _ in range(16)]
            one(urls[0], http)  # warm up workers
            with ThreadPoolExecutor(16) as threads:
                t = time.perf_counter()
                list(threads.map(lambda i: one(urls[i], clients[i % 16]), range(args.items)))
                individual = args.items / (time.perf_counter() - t)

            t = time.perf_counter()
            tasks = [{"task_name": "image.thumb", "url": u, "width": 128} for u in urls]
            keys = [d["key"] for d in http.post("/v2/create", json={"secret": secret, "tasks": tasks}).json()]
            while True:
                statuses = http.post("/v2/status", json={"tasks": keys, "block": True}).json()
                if all(s["status"] in ("success", "error") for s in statuses):
                    break
            one_create = args.items / (time.perf_counter() - t)
            assert all(s["status"] == "success" for s in statuses)

            t = time.perf_counter()
            key = http.post(
                "/v2/batch",
                json={"secret": secret, "task_name": "image.thumb", "input": manifest, "params": {"width": 128}},
            ).json()["key"]
            while True:
                [status] = http.post("/v2/status", json={"tasks": [key], "block": True}).json()
                if status["status"] in ("success", "error"):
                    break
            batch = args.items / (time.perf_counter() - t)
            assert status["status"] == "success" and status["result"]["failed"] == 0, status
    finally:
        origin.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.items} 640x480 JPEGs -> image.thumb width 128"
    )
    print(f"{'individual tasks, 16 clients':34} {individual:8.1f} items/s")
    print(f"{'one create of all tasks':34} {one_create:8.1f} items/s")
    print(f"{'POST /v2/batch':34} {batch:8.1f} items/s")
    print(f"batch vs individual tasks: {batch / individual:.2f}x; vs one create: {batch / one_create:.2f}x")


if __name__ == "__main__":
    main()
