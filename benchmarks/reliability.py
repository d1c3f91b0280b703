"""Reliability and security figures in one run: load, chaos, API fuzzing, hostile media,
slow clients. Everything runs on loopback against a fresh `dragon serve`.

    python benchmarks/reliability.py           # the full sizes (several minutes)
    python benchmarks/reliability.py --quick   # the sizes tests/test_reliability.py runs in CI

Each part is a function the tests call with small sizes against the test service.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dragon.client import Client  # noqa: E402
from dragon.status import ENDED  # noqa: E402
from tests.support.servers import Origin  # noqa: E402
from tests.support.service import DragonProcess  # noqa: E402

MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media")  # as tests/conftest.py
ERROR_STRING = re.compile(r"^[A-Z][A-Za-z]+Error: ")
SIZES = {
    "quick": {
        "streams": 100,
        "creators": 10,
        "load_seconds": 8,
        "chaos_tasks": 60,
        "worker_kills": 5,
        "status_kills": 1,
        "replica_kills": 1,
        "fuzz_seconds": 40,
        "slow_clients": 50,
    },
    "full": {
        "streams": 1000,
        "creators": 200,
        "load_seconds": 30,
        "chaos_tasks": 500,
        "worker_kills": 20,
        "status_kills": 2,
        "replica_kills": 2,
        "fuzz_seconds": 300,
        "slow_clients": 500,
    },
}


# load


def load(url: str, secret: str, streams: int, creators: int, seconds: float) -> dict[str, Any]:
    """``streams`` status streams held open on waiting tasks while ``creators`` clients make
    blocking creates of hello for ``seconds``; then the waiting tasks are let go."""
    return asyncio.run(_load(url, secret, streams, creators, seconds))


async def _load(url: str, secret: str, streams: int, creators: int, seconds: float) -> dict[str, Any]:
    # aiohttp, not httpx: with a thousand connections in one httpx pool, the load
    # generator itself took more CPU than the service (it scans its pool per request).
    gate = Path(tempfile.gettempdir()) / f"dragon-load-gate-{uuid.uuid4().hex}"
    connector = aiohttp.TCPConnector(limit=streams + creators + 20)
    timeout = aiohttp.ClientTimeout(total=300)
    headers = {"Authorization": f"secret {secret}"}
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, headers=headers) as http:
        gated = {"tasks": [{"task_name": "test.gate", "gate": str(gate), "timeout": 300} for _ in range(8)]}
        async with http.post("/v2/create", json=gated) as response:
            keys = [doc["key"] for doc in await response.json()]
        opened, ended_ok = asyncio.Event(), []
        open_count = 0

        async def follow(key: str) -> None:
            nonlocal open_count
            async with http.get("/v2/status_stream", params=[("tasks", key)]) as response:
                await response.content.readline()
                open_count += 1
                if open_count == streams:
                    opened.set()
                last = None
                async for line in response.content:
                    if line.strip():
                        last = json.loads(line)
                ended_ok.append(last is not None and last["status"] == "success")

        followers = [asyncio.create_task(follow(keys[i % len(keys)])) for i in range(streams)]
        await asyncio.wait_for(opened.wait(), timeout=120)
        latencies: list[float] = []
        failures: collections.Counter[str] = collections.Counter()
        running: list[str] = []  # tasks a create answered unended, at the server's block cap
        deadline = time.monotonic() + seconds
        hello = {"tasks": {"task_name": "hello", "name": "load"}, "block": True}

        async def create_loop() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                failure = await _blocking_create(http, hello, running)
                latencies.append(time.perf_counter() - started)
                if failure:
                    failures[failure] += 1

        await asyncio.gather(*(create_loop() for _ in range(creators)))
        gate.touch()
        await asyncio.wait_for(asyncio.gather(*followers), timeout=120)
        gate.unlink(missing_ok=True)
        for failure in await _failures_after_cap(http, running):
            failures[failure] += 1
    ordered = sorted(latencies)
    return {
        "streams_held": open_count,
        "streams_ended_ok": sum(ended_ok),
        "creates": len(latencies),
        "failures": sum(failures.values()),
        "failure_kinds": dict(failures),
        "answered_running": len(running),
        "create_p50_ms": round(1000 * statistics.median(ordered), 1),
        "create_p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
        "hello_per_s": round(len(latencies) / seconds, 1),
    }


async def _blocking_create(http: aiohttp.ClientSession, body: dict[str, Any], running: list[str]) -> str | None:
    """None when the task was created and succeeded, or still runs when the server's
    block cap passed (its key is added to ``running``: Dragon answers a block with the
    status of that moment after ``DRAGON_BLOCK_TIMEOUT``, and a stall that long on a
    busy machine answers every create in flight so); else what went wrong (the HTTP
    status with the start of the body, the task's error, or the client's exception), so
    a failed run says why."""
    try:
        async with http.post("/v2/create", json=body) as response:
            text = await response.text()
    except (TimeoutError, aiohttp.ClientError) as error:
        return type(error).__name__
    if response.status != 200:
        return f"HTTP {response.status}: {text[:120]}"
    status = json.loads(text)[0]
    if status["status"] not in ENDED:
        running.append(status["key"])
        return None
    return None if status["status"] == "success" else _failure(status)


async def _failures_after_cap(http: aiohttp.ClientSession, keys: list[str], rounds: int = 10) -> list[str]:
    """What went wrong with each of ``keys`` that did not end in success, asked with
    blocking status calls on all of them at once (a task still running after ``rounds``
    of them counts as lost)."""
    if not keys:
        return []
    for _ in range(rounds):
        async with http.post("/v2/status", json={"tasks": keys, "block": True}) as response:
            statuses = await response.json()
        if all(status["status"] in ENDED for status in statuses):
            break
    return [f"after the block cap, {_failure(status)}" for status in statuses if status["status"] != "success"]


def _failure(status: dict[str, Any]) -> str:
    """A task status that is not a success, as a failure kind: its state and error."""
    return f"{status['status']}: {str(status.get('error'))[:120]}"


def rss(service: DragonProcess) -> dict[str, int]:
    """Largest resident memory (MiB) per kind of process of the service."""
    found: dict[str, int] = {}
    for pid in service.pids(""):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            kb = int(
                next(
                    line.split()[1]
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")
                )
            )
        except (OSError, StopIteration, ValueError):
            continue
        kind = title.split(".")[0].split(" ")[0].rsplit("/", 1)[-1][:40]
        found[kind] = max(found.get(kind, 0), kb // 1024)
    return dict(sorted(found.items(), key=lambda item: -item[1]))


# chaos


def chaos(
    service: DragonProcess,
    secret: str,
    origin: Origin,
    tasks: int,
    worker_kills: int,
    status_kills: int,
    replica_kills: int,
    restart: bool = False,
) -> dict[str, Any]:
    """Mixed tasks while workers, task shards and API replicas are killed (and, with
    ``restart``, the whole service is restarted mid-batch); then the accounting."""
    image = origin.add(f"chaos-{uuid.uuid4().hex[:6]}.png", _png(320, 240))
    kinds: list[dict[str, Any]] = [
        {"task_name": "hello", "name": "chaos"},
        {"task_name": "test.steps", "steps": 3, "delay": 0.2},
        {"task_name": "test.copy", "text": "chaos output", "extension": "txt"},
        {"task_name": "image.thumb", "url": image, "width": 64},
    ]
    definitions = [kinds[i % len(kinds)] for i in range(tasks)]
    with Client(service.url, secret=secret) as client:
        keys = [s.key for i in range(0, tasks, 100) for s in client.create(definitions[i : i + 100])]
        actions = ["worker"] * worker_kills + ["status"] * status_kills + ["replica"] * replica_kills
        random.shuffle(actions)
        done = {"worker": 0, "status": 0, "replica": 0, "restart": 0}
        for n, action in enumerate(actions):
            titles = {"worker": "ray::execute", "status": "ray::TaskShard", "replica": "ServeReplica:dragon:Api"}
            pids = service.pids(titles[action])
            if pids:
                os.kill(random.choice(pids), signal.SIGKILL)
                done[action] += 1
            if restart and n == len(actions) // 2:
                service.restart()
                done["restart"] += 1
            time.sleep(0.3)
        final = [s for i in range(0, tasks, 100) for s in client.wait(keys[i : i + 100])]
        listing = client.files.list(recursive=True)
    by_key = {s.key: s for s in final}
    stored = {f["name"] for f in listing["files"] if f["name"].split("/", 1)[0] in by_key}
    referenced, missing_outputs = set(), 0
    for s in final:
        for value in (s.result or {}).values() if isinstance(s.result, dict) else []:
            if isinstance(value, str) and "/storage/persistent/" in value:
                referenced.add(value.split("/storage/persistent/", 1)[1].split("/", 1)[1])
                missing_outputs += httpx.get(value, timeout=30).status_code != 200
    errors: dict[str, int] = {}
    for s in final:
        if s.status == "error":
            name = s.error.split(":", 1)[0] if isinstance(s.error, str) else "InvalidParameters"
            errors[name] = errors.get(name, 0) + 1
    return {
        "tasks": tasks,
        "kills": done,
        "statuses": len(final),
        "missing": len(set(keys) - set(by_key)),
        "duplicated": len(final) - len(by_key),
        "ended": sum(s.ended for s in final),
        "success": sum(s.status == "success" for s in final),
        "errors": errors,
        "outputs_missing": missing_outputs,
        "orphans": len(stored - referenced),
    }


# fuzzing


def fuzz(url: str, secret: str, seconds: int) -> dict[str, Any]:
    """schemathesis against /openapi.json: server errors and answers outside the document.

    A status stream answers until its tasks end, silent while they wait: a task's first
    worker (a fresh process importing the media libraries) can take over schemathesis's
    default 10 s read timeout on a loaded 2-core machine. A minute still fails a stream
    that hangs."""
    runner = Path(sys.executable).parent / "schemathesis"
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    done = subprocess.run(
        [
            str(runner),
            "run",
            f"{url}/openapi.json",
            "-H",
            f"Authorization: secret {secret}",
            "--checks",
            checks,
            "--max-time",
            str(seconds),
            "--phases",
            "coverage,fuzzing",
            "-w",
            "2",
            "--max-failures",
            "50",
            "--request-timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    summary = re.search(r"(\d+) generated, (?:(\d+) passed|(\d+) found (\d+) unique failures)", done.stdout)
    cases = int(summary.group(1)) if summary else 0
    failures = int(summary.group(4)) if summary and summary.group(4) else 0
    errors = re.search(r"(\d+) errors?\b", done.stdout.rsplit("SUMMARY", 1)[-1])
    return {
        "cases": cases,
        "failures": failures,
        "errors": int(errors.group(1)) if errors else 0,
        "exit": done.returncode,
        "report": done.stdout[-3000:],
    }


# hostile media


TASKS_BY_KIND = {
    "image": ("image.info", "image.thumb"),
    "audio": ("audio.info", "audio.waveform", "audio.beats"),
    "video": ("video.info", "video.thumb"),
}
SUFFIXES = {
    "image": {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".heic", ".tif", ".tiff", ".bmp"},
    "audio": {
        ".mp3",
        ".flac",
        ".ogg",
        ".opus",
        ".wav",
        ".m4a",
        ".aac",
        ".wma",
        ".asf",
        ".ape",
        ".mpc",
        ".ac3",
        ".aif",
        ".amr",
        ".dsf",
        ".wv",
        ".spx",
        ".afc",
        ".mp4",
    },
    "video": {".mp4", ".mkv", ".webm", ".mov", ".avi", ".flv", ".3gp", ".wmv", ".mpg", ".mts", ".mxf", ".ts"},
}


def hostile_inputs(work: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    """(kind, file): every media file of ../shared/media, plus truncated and bit-flipped
    copies of a sample, plus crafted bombs and playlists that point at local files."""
    files: list[tuple[str, Path]] = []
    for path in sorted(MEDIA.rglob("*")):
        for kind, suffixes in SUFFIXES.items():
            if path.is_file() and path.suffix.lower() in suffixes and path.stat().st_size < 20 * 1024**2:
                files.append((kind, path))
    rng = random.Random(7)
    for kind, path in rng.sample(files, min(len(files), 30)):
        data = path.read_bytes()
        (work / f"truncated-{path.name}").write_bytes(data[: len(data) // 2])
        flipped = bytearray(data)
        for i in rng.sample(range(len(flipped)), max(1, len(flipped) // 100)):
            flipped[i] ^= 0xFF
        (work / f"flipped-{path.name}").write_bytes(bytes(flipped))
        files += [(kind, work / f"truncated-{path.name}"), (kind, work / f"flipped-{path.name}")]
    crafted = {
        "bomb.png": ("image", _png(20000, 20000, mode="1")),  # 400 Mpx that compress to a few KB
        "huge-header.png": ("image", _png_header(1 << 30, 1 << 30)),
        "playlist.m3u8": ("video", b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"),
        "concat.ffconcat": ("video", b"ffconcat version 1.0\nfile '/etc/passwd'\n"),
        "passwd.mp3": ("audio", b"ffconcat version 1.0\nfile '/etc/passwd'\n"),
        "empty.mp4": ("video", b""),
    }
    for name, (kind, data) in crafted.items():
        (work / name).write_bytes(data)
        files.append((kind, work / name))
    return files[:limit] if limit else files


def hostile_media(
    service: DragonProcess, secret: str, origin: Origin, work: Path, limit: int | None = None
) -> dict[str, Any]:
    """Every input through every task that takes its kind: each ends in success or a
    clear error; no worker dies; worker memory is sampled throughout."""
    inputs = hostile_inputs(work, limit)
    urls = {path: origin.add(f"hostile-{i}-{path.name}", path.read_bytes()) for i, (_, path) in enumerate(inputs)}
    definitions = [{"task_name": task, "url": urls[path]} for kind, path in inputs for task in TASKS_BY_KIND[kind]]
    peak = {"worker_mib": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["worker_mib"] = max(
                peak["worker_mib"],
                max((v for k, v in rss(service).items() if "execute" in k or "IDLE" in k), default=0),
            )
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with Client(service.url, secret=secret) as client:
            keys = [s.key for i in range(0, len(definitions), 100) for s in client.create(definitions[i : i + 100])]
            final = [s for i in range(0, len(keys), 100) for s in client.wait(keys[i : i + 100])]
    finally:
        stop.set()
        sampler.join()
    unclear = [
        (d, s.error)
        for d, s in zip(definitions, final)
        if s.status == "error" and not (isinstance(s.error, dict) or ERROR_STRING.match(str(s.error)))
    ]
    crashed = [
        (d, s.error)
        for d, s in zip(definitions, final)
        if s.status == "error" and str(s.error).startswith(("WorkerCrashedError", "InternalError"))
    ]
    return {
        "inputs": len(inputs),
        "tasks": len(final),
        "success": sum(s.status == "success" for s in final),
        "clear_errors": sum(s.status == "error" for s in final) - len(unclear),
        "unclear": unclear,
        "crashed": crashed,
        "peak_worker_mib": peak["worker_mib"],
    }


# slow clients


def slow_clients(url: str, count: int, seconds: float = 5.0) -> dict[str, Any]:
    """``count`` connections that send a request's headers a byte at a time, while the
    API must keep answering others promptly."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /v2/status HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for s in sockets:
            try:
                s.sendall(b"X")
            except OSError:
                pass
        started = time.perf_counter()
        r = httpx.get(f"{url}/health", timeout=30)
        latencies.append(time.perf_counter() - started)
        assert r.status_code == 200
        time.sleep(0.2)
    for s in sockets:
        s.close()
    return {"slow_clients": count, "health_checks": len(latencies), "worst_ms": round(1000 * max(latencies), 1)}


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, "PNG", optimize=mode == "1")
    return buffer.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds nothing else."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the sizes CI runs")
    parser.add_argument("--only", choices=("load", "chaos", "media", "fuzz"), help="run one part alone")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    wanted = {args.only} if args.only else {"load", "chaos", "media", "fuzz"}
    from benchmarks.service import running_service

    work = Path(tempfile.mkdtemp(prefix="dragon-reliability-"))
    origin = Origin(work)
    rows: list[tuple[str, str]] = []
    env = {"DRAGON_TASK_MODULES": "tests.support.tasks", "DRAGON_TEST_INSTANCE": f"reliability-{os.getpid()}"}
    try:
        with running_service(env) as service:
            if "load" in wanted:
                for creators in sorted(
                    {max(1, size["creators"] // 8), size["creators"] // 4, size["creators"] // 2, size["creators"]}
                ):
                    figures = load(service.url, service.secret, size["streams"], creators, size["load_seconds"])
                    rows.append((f"load, {creators} blocking creators", json.dumps(figures)))
                rows.append(("largest RSS per process (MiB)", json.dumps(dict(list(rss(service.process).items())[:8]))))
                rows.append(("slow clients", json.dumps(slow_clients(service.url, size["slow_clients"]))))
            if "chaos" in wanted:
                chaos_args = (
                    service.process,
                    service.secret,
                    origin,
                    size["chaos_tasks"],
                    size["worker_kills"],
                    size["status_kills"],
                    size["replica_kills"],
                )
                rows.append(("chaos", json.dumps(chaos(*chaos_args))))
                rows.append(("chaos with a restart", json.dumps(chaos(*chaos_args, restart=True))))
            if "media" in wanted:
                media = hostile_media(service.process, service.secret, origin, work)
                rows.append(
                    (
                        "hostile media",
                        json.dumps(
                            {k: v for k, v in media.items() if k not in ("unclear", "crashed")}
                            | {"unclear": len(media["unclear"]), "crashed": len(media["crashed"])}
                        ),
                    )
                )
            if "fuzz" in wanted:
                fuzzed = fuzz(service.url, service.secret, size["fuzz_seconds"])
                rows.append(
                    ("API fuzzing (schemathesis)", json.dumps({k: v for k, v in fuzzed.items() if k != "report"}))
                )
                if fuzzed["exit"]:
                    print(fuzzed["report"])
    finally:
        origin.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name, summary in rows:
        print(f"{name:32} {summary}")


if __name__ == "__main__":
    main()
