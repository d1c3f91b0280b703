"""Task types that exist only for the test suite, loaded with DRAGON_TASK_MODULES.

They make the pipeline observable: a task that waits for a gate file (so a test can
restart things while it runs), one that reports progress, and ones that fail or crash.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from dragon.errors import InvalidContentError
from dragon.registry import Resources, TaskContext, TaskParams, task


class GateParams(TaskParams):
    pid_file: str | None = None
    gate: str | None = None  # the task waits until this file exists
    first_attempt_only: bool = False  # later attempts do not wait
    timeout: float = 120.0
    crash: bool = False  # the worker kills itself, every attempt


@task("test.gate", GateParams, resources=Resources(cpus=0.1))
def gate(ctx: TaskContext, params: GateParams) -> dict:
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
    return {"attempt": ctx.attempt, "pid": os.getpid()}


class StepsParams(TaskParams):
    steps: int = 3
    delay: float = 0.2


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
