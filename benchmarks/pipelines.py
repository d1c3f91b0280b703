"""A three-step chain on a large video: one request (a pipeline) against the same three
steps sent by a client one after another, in one run, on one service.

The source is a generated 1920x1080 H.264 + AAC video served on loopback. The chain:
  0. video.convert of the source at 1920 wide, crf 4 (a large output)
  1. video.convert of step 0's output to 320 wide
  2. video.strip of 8 frames of step 1's output
As a pipeline it is one POST /v2/create (block=true). The client-driven chain is what a
client does without pipelines, at its fastest: each step a create with block=true, the
next one sent with the URL the previous returned. Runs alternate between the two; the
best of ``--runs`` of each is printed with their ratio, and the median time between a
step's end and the next step's start (from the statuses' events): what chaining costs,
apart from the steps themselves, which a loaded machine slows down for both alike.

    python benchmarks/pipelines.py [--seconds 20] [--runs 3] [--s3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service import running_service  # noqa: E402
from benchmarks.timing import load  # noqa: E402
from benchmarks.video import make_source  # noqa: E402
from tests.support.servers import Origin, SeaweedS3  # noqa: E402

STEPS = [
    {"task_name": "video.convert", "width": 1920, "video_bitrate": 200000, "crf": 4},
    {"task_name": "video.convert", "width": 320},
    {"task_name": "video.strip", "count": 8, "width": 160, "height": 90},
]


def pipeline(http: httpx.Client, secret: str, source: str) -> list[dict[str, Any]]:
    tasks = [{**STEPS[0], "url": source}, {**STEPS[1], "url": {"task": 0}}, {**STEPS[2], "url": {"task": 1}}]
    statuses = http.post("/v2/create", json={"secret": secret, "tasks": tasks, "block": True}).json()
    return _wait(http, statuses)


def client_driven(http: httpx.Client, secret: str, source: str) -> list[dict[str, Any]]:
    url, statuses = source, []
    for step in STEPS:
        [status] = _wait(
            http, http.post("/v2/create", json={"secret": secret, "tasks": {**step, "url": url}, "block": True}).json()
        )
        statuses.append(status)
        url = status["result"]["output"]
    return statuses


def _wait(http: httpx.Client, statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Past the service's block time-out, block again until every task has ended."""
    while any(s["status"] not in ("success", "error") for s in statuses):
        statuses = http.get("/v2/status", params={"tasks": [s["key"] for s in statuses], "block": "true"}).json()
    for s in statuses:
        assert s["status"] == "success", s.get("error")
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20, help="length of the 1080p source")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="outputs on S3 (a local SeaweedFS) instead of local disk")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-pipelines-"))
    make_source(work / "source.mp4", args.seconds)
    origin = Origin(work)
    s3 = SeaweedS3(work / "seaweed") if args.s3 else None
    env = {"DRAGON_BLOCK_TIMEOUT": "600"}
    if s3 is not None:
        env |= {
            "DRAGON_STORAGE_BACKEND": "s3",
            "DRAGON_S3_ENDPOINT_URL": s3.endpoint,
            "DRAGON_S3_BUCKET": s3.bucket,
            "DRAGON_S3_ACCESS_KEY_ID": s3.ACCESS_KEY,
            "DRAGON_S3_SECRET_ACCESS_KEY": s3.SECRET_KEY,
        }
    times: dict[str, list[float]] = {"pipeline": [], "client": []}
    gaps: dict[str, list[float]] = {"pipeline": [], "client": []}
    sizes: list[int] = []
    try:
        with running_service(env) as service, httpx.Client(base_url=service.url, timeout=900) as http:
            source = f"{origin.url}/source.mp4"
            pipeline(http, service.secret, source)  # warm: workers, codecs, caches
            for _ in range(args.runs):
                for name, run in (("client", client_driven), ("pipeline", pipeline)):
                    t = time.perf_counter()
                    statuses = run(http, service.secret, source)
                    times[name].append(time.perf_counter() - t)
                    gaps[name] += [
                        _at(b["events"]["started"]) - _at(a["events"]["completed"])
                        for a, b in zip(statuses, statuses[1:])
                    ]
                    sizes = [_size(http, s["result"]["output"]) for s in statuses]
    finally:
        origin.close()
        if s3 is not None:
            s3.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {load()}")
    print(
        f"source: {args.seconds} s of 1920x1080 H.264 + AAC; outputs of the steps: "
        + ", ".join(f"{size / 1e6:.1f} MB" for size in sizes)
        + f"; store: {'S3' if args.s3 else 'local disk'}"
    )
    client, piped = min(times["client"]), min(times["pipeline"])
    gap = {k: statistics.median(v) * 1000 for k, v in gaps.items()}
    print(
        f"{'three steps, best of ' + str(args.runs):40} {'seconds':>9} {'vs client':>10} {'gap ms':>8} {'vs client':>10}"
    )
    print(
        f"{'one request (pipeline)':40} {piped:9.2f} {piped / client:10.2f} {gap['pipeline']:8.1f} "
        f"{gap['pipeline'] / gap['client']:10.2f}"
    )
    print(f"{'client-driven, step after step':40} {client:9.2f} {1:10.2f} {gap['client']:8.1f} {1:10.2f}")
    print("all runs: " + "; ".join(f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in times.items()))


def _size(http: httpx.Client, url: str) -> int:
    """From a one-byte ranged GET: presigned S3 URLs are signed for GET only."""
    answer = http.get(url, headers={"Range": "bytes=0-0"})
    return int(answer.headers.get("content-range", "/0").rsplit("/", 1)[-1] or 0)


def _at(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


if __name__ == "__main__":
    main()
