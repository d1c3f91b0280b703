"""Task types that exist only for the test suite, loaded with DRAGON_TASK_MODULES.

They make the pipeline observable: a task that waits for a gate file (so a test can
restart things while it runs), one that reports progress, and ones that fail or crash.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import ray
from pydantic import Field, field_validator

from dragon.errors import InvalidContentError
from dragon.registry import Resources, TaskContext, TaskParams, task

TMP = tempfile.gettempdir()


class GateParams(TaskParams):
    pid_file: str | None = None
    gate: str | None = None  # the task waits until this file exists
    first_attempt_only: bool = False  # later attempts do not wait
    timeout: float = Field(default=120.0, ge=0, le=300)

    @field_validator("pid_file", "gate")
    @classmethod
    def _in_tmp(cls, path: str | None) -> str | None:
        """The API fuzzer sends these too: never a file outside the temporary directory."""
        if path is not None and (not path.startswith(f"{TMP}/") or ".." in path or "\x00" in path):
            raise ValueError(f"must be a path under {TMP}")
        return path

    crash: bool = False  # the worker kills itself, every attempt
    store: bool = False  # store an output before waiting at the gate
    url: str | None = None  # an input it ignores: a step of a pipeline that waits at its gate


@task("test.gate", GateParams, resources=Resources(cpus=0.1), files=("output",))
def gate(ctx: TaskContext, params: GateParams) -> dict:
    stored = {}
    if params.store:
        note = ctx.scratch / "note.txt"
        note.write_text(f"attempt {ctx.attempt}")
        stored["output"] = ctx.store(note, "txt", "text/plain")
    if params.pid_file:
        Path(params.pid_file).write_text(f"{os.getpid()} {ctx.attempt}")
    if params.crash:
        os.kill(os.getpid(), signal.SIGKILL)
    if params.gate and not (params.first_attempt_only and ctx.attempt > 1):
        deadline = time.monotonic() + params.timeout
        while not Path(params.gate).exists():
            if time.monotonic() > deadline:
                raise InvalidContentError("the gate never opened")
            time.sleep(0.05)
    return {"attempt": ctx.attempt, "pid": os.getpid(), **stored}


class StepsParams(TaskParams):
    steps: int = Field(default=3, ge=1, le=100)
    delay: float = Field(default=0.2, ge=0, le=5)


@task("test.steps", StepsParams, resources=Resources(cpus=0.1))
def steps(ctx: TaskContext, params: StepsParams) -> dict:
    for i in range(1, params.steps + 1):
        time.sleep(params.delay)
        ctx.partial_result({f"step{i}": i}, progress=round(100 * i / params.steps))
    return {"steps": params.steps}


class FailParams(TaskParams):
    kind: str = "task"


@task("test.fail", FailParams, resources=Resources(cpus=0.1))
def fail(ctx: TaskContext, params: FailParams) -> None:
    if params.kind == "task":
        raise InvalidContentError("this content is not acceptable")
    raise RuntimeError("a bug with a secret inside: hunter2")


class CopyParams(TaskParams):
    url: str | None = None  # fetched through the safe fetcher...
    text: str | None = None  # ...or this text is stored instead
    extension: str = "bin"
    content_type: str = "application/octet-stream"
    max_bytes: int | None = None
    extra_file: bool = False  # also store a second, non-main file


@task("test.copy", CopyParams, resources=Resources(cpus=0.1), files=("output",))
def copy(ctx: TaskContext, params: CopyParams) -> dict:
    if params.url is not None:
        source = ctx.fetch(params.url, params.max_bytes).path
    else:
        source = ctx.scratch / "text"
        source.write_text(params.text or "")
    result = {
        "output": ctx.store(source, params.extension, params.content_type),
        "size": source.stat().st_size,
        "scratch": str(ctx.scratch),
    }
    if params.extra_file:
        result["extra"] = ctx.store(source, "txt", "text/plain", main=False)
    return result


class InputParams(TaskParams):
    url: str


@task("test.input", InputParams, resources=Resources(cpus=0.1))
def input_(ctx: TaskContext, params: InputParams) -> dict:
    """How an input reached the task: ``links`` > 1 when the fetched file is the stored
    output itself (no bytes copied), ``opened`` "file" when a seeking reader got a path."""
    fetched = ctx.fetch(params.url)
    with ctx.open(params.url) as opened:
        kind = "file" if isinstance(opened, Path) else "stream"
    return {"links": fetched.path.stat().st_nlink, "size": fetched.size, "opened": kind}


class BigParams(TaskParams):
    megabytes: int = Field(default=1, ge=1, le=600)


@task("test.big", BigParams, resources=Resources(cpus=0.5), files=("output",))
def big(ctx: TaskContext, params: BigParams) -> dict:
    """A large output, written a megabyte at a time; says how much the worker's peak
    memory grew while it was stored (ru_maxrss, KiB)."""
    path = ctx.scratch / "big.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(params.megabytes):
            chunk = block[i:] + block[:i]
            f.write(chunk)
            digest.update(chunk)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    url = ctx.store(path, "bin", "application/octet-stream")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"output": url, "sha256": digest.hexdigest(), "peak_growth_kib": grown}


class WhereParams(TaskParams):
    seconds: float = Field(default=0.0, ge=0, le=30)  # held before answering, so tasks overlap
    store: bool = False  # store an output holding the node's name
    url: str | None = None  # an input it ignores: a pipeline's step whose node is seen


@task("test.where", WhereParams, resources=Resources(cpus=1.0), files=("output",))
def where(ctx: TaskContext, params: WhereParams) -> dict:
    """Which node ran the attempt: the cluster tests see tasks spread and move."""
    time.sleep(params.seconds)
    report = _node_report(ctx)
    if params.store:
        note = ctx.scratch / "node.txt"
        note.write_text(report["node"] or "")
        report["output"] = ctx.store(note, "txt", "text/plain")
    return report


@task("test.where_gpu", WhereParams, resources=Resources(cpus=0.5, gpu=0.25))
def where_gpu(ctx: TaskContext, params: WhereParams) -> dict:
    """A GPU-capable task: it runs with or without a GPU; the report says which."""
    time.sleep(params.seconds)
    return _node_report(ctx)


def _node_report(ctx: TaskContext) -> dict:
    runtime = ray.get_runtime_context()
    return {
        "node_id": runtime.get_node_id(),
        "node": runtime.get_node_labels().get("dragon-test-node"),
        "gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
        "attempt": ctx.attempt,
    }


class PooledParams(TaskParams):
    seconds: float = Field(default=0.0, ge=0, le=60)  # held before answering
    report: bool = True  # report progress while held (a cancel is seen there) or not at all
    crash_first: bool = False  # the first attempt kills its process


@task("test.pooled", PooledParams, resources=Resources(cpus=1.0, gpu=0.25, pooled=True))
def pooled(ctx: TaskContext, params: PooledParams) -> dict:
    """A task type that runs in a pool member where there is one (dragon/actors/pool.py)."""
    if params.crash_first and ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + params.seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
        if params.report:
            ctx.progress(round(100 * (1 - left / params.seconds)))
    return {**_node_report(ctx), "pid": os.getpid()}
