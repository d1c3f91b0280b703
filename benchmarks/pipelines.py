"""A three-step chain on a large video: one request (a pipeline) against the same three
steps sent by a client one after another, in one run, on one service.

The source is a generated 1920x1080 H.264 + AAC video served on loopback. The chain
(``--shape chain``):
  0. video.convert of the source at 1920 wide, crf 4 (a large output)
  1. video.convert of step 0's output to 320 wide
  2. video.strip of 8 frames of step 1's output
or, with ``--shape fan-out``, steps 1 and 2 both use step 0's output (the issue's
"video.convert into video.thumb and video.strip" shape, with a small convert in place of
the thumb so that the second step is not negligible); a pipeline runs them side by side
as soon as step 0 has ended, a client one after another. ``--shape frame`` is a chain of
short steps on the same video: video.thumb at 15 s, an image.thumb of that frame, an
image.info of the thumbnail; there the time between steps is a visible share of the whole.
As a pipeline it is one POST /v2/create (block=true). The client-driven chain is what a
client does without pipelines, at its fastest: each step a create with block=true, the
next one sent with the URL the previous returned. Runs alternate between the two (which
goes first alternates too); printed: the best of ``--runs`` of each with their ratio, the
run-by-run differences with a bootstrap interval of their median and a sign test, and the
median time between a step's end and the next step's start (from the statuses' events):
what chaining costs, apart from the steps themselves, which a loaded machine slows down
for both alike.

With ``--nodes N --s3`` the service runs on a local cluster of N worker nodes: a
pipeline's step runs on its input's node (where the input is the node's copy of what it
stored), a client-driven step wherever Ray places it (downloading its input from S3 when
that is another node).

    python benchmarks/pipelines.py [--seconds 20] [--runs 3] [--s3] [--nodes N] [--shape chain|fan-out|frame]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
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

TRANSCODE = [
    {"task_name": "video.convert", "width": 1920, "video_bitrate": 200000, "crf": 4},
    {"task_name": "video.convert", "width": 320},
    {"task_name": "video.strip", "count": 8, "width": 160, "height": 90},
]
FRAME = [
    {"task_name": "video.thumb", "time": 15, "format": "png"},
    {"task_name": "image.thumb", "width": 320, "height": 240},
    {"task_name": "image.info"},
]
Shape = tuple[list[dict[str, Any]], list[int | None]]
"""The steps, and for each the step whose output it takes (None: the source)."""
SHAPES: dict[str, Shape] = {
    "chain": (TRANSCODE, [None, 0, 1]),
    "fan-out": (TRANSCODE, [None, 0, 0]),
    "frame": (FRAME, [None, 0, 1]),
}


def pipeline(http: httpx.Client, secret: str, source: str, shape: Shape) -> list[dict[str, Any]]:
    steps, uses = shape
    tasks = [{**step, "url": source if used is None else {"task": used}} for step, used in zip(steps, uses)]
    statuses = http.post("/v2/create", json={"secret": secret, "tasks": tasks, "block": True}).json()
    return _wait(http, statuses)


def client_driven(http: httpx.Client, secret: str, source: str, shape: Shape) -> list[dict[str, Any]]:
    statuses: list[dict[str, Any]] = []
    for step, used in zip(*shape):
        url = source if used is None else statuses[used]["result"]["output"]
        [status] = _wait(
            http, http.post("/v2/create", json={"secret": secret, "tasks": {**step, "url": url}, "block": True}).json()
        )
        statuses.append(status)
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
    parser.add_argument("--shape", choices=sorted(SHAPES), default="chain")
    parser.add_argument(
        "--nodes",
        type=int,
        default=0,
        help="run on a local cluster of this many 1-CPU worker nodes (with --s3: outputs are not on a shared disk)",
    )
    args = parser.parse_args()
    if args.nodes and not args.s3:
        parser.error("--nodes needs --s3: the local-disk store is the single-node default")
    shape = SHAPES[args.shape]
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
        with running_service(env, args.nodes) as service, httpx.Client(base_url=service.url, timeout=900) as http:
            source = f"{origin.url}/source.mp4"
            pipeline(http, service.secret, source, shape)  # warm: workers, codecs, caches
            for i in range(args.runs):
                order = (("client", client_driven), ("pipeline", pipeline))
                for name, run in order if i % 2 == 0 else order[::-1]:  # neither side always goes first
                    t = time.perf_counter()
                    statuses = run(http, service.secret, source, shape)
                    times[name].append(time.perf_counter() - t)
                    gaps[name] += _gaps(statuses)
                    sizes = [_size(http, s["result"].get("output")) for s in statuses]
    finally:
        origin.close()
        if s3 is not None:
            s3.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {load()}")
    print(
        f"source: {args.seconds} s of 1920x1080 H.264 + AAC; outputs of the steps: "
        + ", ".join(f"{size / 1e6:.1f} MB" for size in sizes)
        + f"; store: {'S3' if args.s3 else 'local disk'}; shape: {args.shape}"
        + (f"; {args.nodes} worker nodes of 1 CPU" if args.nodes else "; one node")
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
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"median of the runs: pipeline {medians['pipeline']:.2f} s, client-driven {medians['client']:.2f} s, "
        f"ratio {medians['pipeline'] / medians['client']:.2f}"
    )
    saved = [c - p for c, p in zip(times["client"], times["pipeline"])]
    low, high = _median_interval(saved)
    faster = sum(d > 0 for d in saved)
    print(
        f"paired runs (client minus pipeline, run by run): median {statistics.median(saved) * 1000:.0f} ms "
        f"(95% bootstrap interval {low * 1000:.0f} to {high * 1000:.0f} ms), pipeline faster in {faster} of "
        f"{len(saved)} (sign test, one-sided p = {_sign_test(faster, len(saved)):.3g})"
    )


def _median_interval(samples: list[float], draws: int = 10_000) -> tuple[float, float]:
    """A percentile-bootstrap 95% interval of the median: does the saving stand out of the noise?"""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(samples, k=len(samples))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws)]


def _sign_test(wins: int, pairs: int) -> float:
    """The chance of ``wins`` or more of ``pairs`` if neither side were faster."""
    return sum(math.comb(pairs, k) for k in range(wins, pairs + 1)) / 2**pairs


def _gaps(statuses: list[dict[str, Any]]) -> list[float]:
    """For each step after the first, the time from the last end before its start to
    its start: what chaining costs, whatever the shape."""
    gaps = []
    for i, status in enumerate(statuses[1:], 1):
        started = _at(status["events"]["started"])
        ended = [_at(s["events"]["completed"]) for s in statuses[:i]]
        gaps.append(started - max(t for t in ended if t <= started))
    return gaps


def _size(http: httpx.Client, url: str | None) -> int:
    """From a one-byte ranged GET: presigned S3 URLs are signed for GET only."""
    if url is None:  # a step without an output file (image.info)
        return 0
    answer = http.get(url, headers={"Range": "bytes=0-0"})
    return int(answer.headers.get("content-range", "/0").rsplit("/", 1)[-1] or 0)


def _at(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


if __name__ == "__main__":
    main()
