"""API overhead, side by side with bare Ray Serve and bare Ray, in one run.

Starts `dragon serve` on a temporary data dir, then measures:
  1. latency of POST /v2/create with block=true for one hello task, against a bare
     route (GET /ping) of the same Serve deployment, and a bare route that reads a JSON
     body as every route does (POST /ping: Serve's replica fetches a body from its proxy
     in a round trip of its own);
  2. throughput of one create holding N hello tasks until all have ended, against N
     raw Ray tasks (same CPU request) submitted to the same cluster.

    python benchmarks/api.py [--requests 200] [--batch 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import running_service  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    with running_service() as service:
        run(service.url, service.secret, service.ray_address, args)


def run(url: str, secret: str, ray_address: str, args: argparse.Namespace) -> None:
    http = httpx.Client(base_url=url, timeout=120)
    hello = {"secret": secret, "tasks": {"task_name": "hello", "name": "bench"}, "block": True}
    for _ in range(20):  # warm up workers and connections
        http.get("/ping")
        http.post("/v2/create", json=hello)

    bare, bare_post, create = [], [], []
    for _ in range(args.requests):
        t = time.perf_counter()
        http.get("/ping")
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        http.post("/ping", json=hello)
        bare_post.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = http.post("/v2/create", json=hello)
        create.append(time.perf_counter() - t)
        assert r.json()[0]["result"] == "Hello bench", r.text

    import ray

    ray.init(address=ray_address, logging_level="ERROR")

    @ray.remote(num_cpus=0.25)  # as the hello task type
    def raw_hello(name: str) -> str:
        return f"Hello {name}"

    def api_batch(size: int = args.batch) -> float:
        t = time.perf_counter()
        tasks = [{"task_name": "hello", "name": str(i)} for i in range(size)]
        keys = [d["key"] for d in http.post("/v2/create", json={"secret": secret, "tasks": tasks}).json()]
        statuses = http.post("/v2/status", json={"tasks": keys, "block": True}).json()
        assert all(s["status"] == "success" for s in statuses)
        return time.perf_counter() - t

    def ray_batch(size: int = args.batch) -> float:
        t = time.perf_counter()
        ray.get([raw_hello.remote(str(i)) for i in range(size)])
        return time.perf_counter() - t

    # Alternate the two, best of three each, so both see the same machine state. Ray
    # keeps one pool of worker processes per job (and per detached actor tree), and
    # this driver is another job than the service: each side gets a warm-up batch, so
    # neither is timed while Ray starts the worker processes the other one's let go.
    api_seconds, ray_seconds = float("inf"), float("inf")
    for _ in range(3):
        ray_batch(args.batch // 4)
        ray_seconds = min(ray_seconds, ray_batch())
        api_batch(args.batch // 4)
        api_seconds = min(api_seconds, api_batch())
    ray.shutdown()

    b50, b95 = percentiles(bare)
    p50, p95 = percentiles(bare_post)
    c50, c95 = percentiles(create)
    api_rate, ray_rate = args.batch / api_seconds, args.batch / ray_seconds
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, ray {ray.__version__}"
    )
    print(f"{'measure':44} {'dragon':>10} {'reference':>10} {'ratio':>7}")
    print(f"{'create block=true p50 (ms) vs bare route':44} {c50 * 1e3:10.2f} {b50 * 1e3:10.2f} {c50 / b50:7.2f}")
    print(f"{'create block=true p95 (ms) vs bare route':44} {c95 * 1e3:10.2f} {b95 * 1e3:10.2f} {c95 / b95:7.2f}")
    print(f"{'create block=true p50 (ms) vs bare POST route':44} {c50 * 1e3:10.2f} {p50 * 1e3:10.2f} {c50 / p50:7.2f}")
    print(
        f"{f'{args.batch} hello tasks/s vs raw Ray tasks/s':44} {api_rate:10.0f} {ray_rate:10.0f} {api_rate / ray_rate:7.2f}"
    )


if __name__ == "__main__":
    main()
