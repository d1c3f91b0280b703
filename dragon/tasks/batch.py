"""batch: one task type over a manifest of inputs (not in the v2 spec; ``POST /v2/batch``).

A batch is itself a task, so it has a key, a status that streams progress (rows done,
failed, rate), callbacks, cancel and retries; its rows run the other task types through
:mod:`dragon.batch`. Its state lives under the data directory, keyed by what the batch
is, so running the same batch again resumes it; the results table is stored as one
Parquet file in the batch's store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.parquet as pq
from pydantic import Field, field_validator

from dragon import registry
from dragon.registry import Resources, TaskContext, TaskParams, task

MAX_MANIFEST_BYTES = 1024**3


class BatchParams(TaskParams):
    task: str = Field(description="The task type every row runs.")
    input: str = Field(
        pattern=r"^https?://",
        max_length=2048,
        description="URL of the manifest: .parquet, .csv or .jsonl, one row of parameters per item.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of every row; a row's own value wins.")

    @field_validator("task")
    @classmethod
    def _known(cls, name: str) -> str:
        if name == "batch" or registry.get(name) is None:
            raise ValueError(f"unknown task type {name!r}")
        return name


@task(
    "batch",
    BatchParams,
    resources=Resources(cpus=0.1),
    values=("total", "done", "failed", "skipped", "rate"),
    files=("output",),
)
def run_batch(ctx: TaskContext, params: BatchParams) -> dict:
    """Rows that succeeded in an earlier run of the same batch are skipped (``skipped``)."""
    from dragon import batches as batch  # the batch runner sits above the task layer it drives

    suffix = Path(urlparse(params.input).path).suffix.lower()
    if suffix not in batch.FORMATS:
        suffix = ".csv"
    fetched = ctx.fetch(params.input, MAX_MANIFEST_BYTES)
    manifest = fetched.path.rename(fetched.path.with_suffix(suffix))
    identity = json.dumps([params.task, params.input, params.params, ctx.task_store], sort_keys=True)
    state = (
        ctx.settings.data_dir.absolute() / "batches" / ctx.account / hashlib.sha256(identity.encode()).hexdigest()[:20]
    )
    progress = batch.run(
        params.task,
        manifest,
        state,
        ctx.settings,
        ctx.account,
        params.params,
        ctx.task_store,
        on_progress=lambda p: ctx.partial_result(p.as_dict(), progress=p.percent),
        batch_id=ctx.key,
    )
    results = ctx.scratch / "results.parquet"
    pq.write_table(batch.read_results(state), results)
    return {**progress.as_dict(), "output": ctx.store(results, "parquet", "application/vnd.apache.parquet")}
