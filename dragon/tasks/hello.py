"""The spec's ``hello`` task: the smallest task that goes through the whole pipeline."""

from __future__ import annotations

from pydantic import Field

from dragon.registry import Resources, TaskContext, TaskParams, task


class HelloParams(TaskParams):
    name: str = Field(description="Who to greet.")


@task("hello", HelloParams, resources=Resources(cpus=0.25))
def hello(ctx: TaskContext, params: HelloParams) -> str:
    """Greets ``name``: ``{"task_name": "hello", "name": "John"}`` gives ``"Hello John"``."""
    return f"Hello {params.name}"
