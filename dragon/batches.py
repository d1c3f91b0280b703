"""Batch mode: one task type over a manifest of inputs, on Ray Data.

The manifest (Parquet, CSV or JSON Lines) gives one row per item, with at least ``url``;
fixed parameters come from the caller. Rows run through the same task functions as
single tasks (:func:`dragon.actors.worker.run_task`), in a Ray Data actor pool whose
streaming executor bounds what is in flight. Results go to a directory of Parquet parts,
one row per input: ``key``, the input's ``url`` (when the manifest has one), ``status``,
``error``, the task's values and file URLs.

Every part is written whole (temporary name, then rename) at most every PART_ROWS rows or
PART_SECONDS seconds, so an interrupted batch keeps what it finished; running it again
skips the rows already succeeded and re-runs the rest. A row's key is its ``key`` column,
or a digest of its content, so resuming does not depend on row order.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from dragon import registry
from dragon.actors import storage
from dragon.actors.worker import RunIO, run_task
from dragon.config import Settings
from dragon.errors import InvalidParametersError, status_error
from dragon.status import TaskRecord

PART_ROWS = 1000
PART_SECONDS = 10.0
KEPT_INPUTS = ("url",)  # manifest columns copied into the results, to join them back without the key
MAX_BLOCK_ROWS = 1000  # manifest rows per Ray Data block: about 200 blocks, 8 to 1000 rows each
ROWS_PER_CALL = 16  # rows a pool actor runs per call: small, so progress and backpressure stay fine-grained
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json", ".ndjson": "json"}


@dataclass
class Progress:
    """Where a batch stands; ``skipped`` rows had succeeded in an earlier run."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    rate: float = 0.0  # rows per second in this run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * (self.done + self.skipped) / self.total)


def run(
    task_name: str,
    manifest: Path,
    output: Path,
    settings: Settings,
    account: str,
    params: dict[str, Any] | None = None,
    task_store: dict[str, Any] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    concurrency: int | None = None,
    batch_id: str | None = None,
    part_rows: int = PART_ROWS,
) -> Progress:
    """Run ``task_name`` over every row of ``manifest``; results under ``output``.

    Needs a Ray connection to a running service (its storage actors keep the outputs).
    """
    registry.load(settings.task_modules)
    task_type = registry.get(task_name)
    if task_type is None:
        raise InvalidParametersError({"task_name": [f"unknown task type {task_name!r}"]})
    kind = FORMATS.get(manifest.suffix.lower())
    if kind is None:
        raise InvalidParametersError({"input": ["the manifest must be .parquet, .csv or .jsonl"]})
    output.mkdir(parents=True, exist_ok=True)
    done_keys = _keep_successes(output)
    progress = Progress(total=_count_rows(manifest, kind))
    reader = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "json": ray.data.read_json}[kind]
    # Small blocks (streaming repartition): a map task hands its results on when its block
    # is done, so the block size bounds progress reporting and what an interruption loses.
    block_rows = min(MAX_BLOCK_ROWS, max(ROWS_PER_CALL, progress.total // 200))
    read_options: dict[str, Any] = {"lines": True} if kind == "json" else {}
    dataset = reader(str(manifest), **read_options)
    dataset = dataset.repartition(target_num_rows_per_block=block_rows)
    resources = task_type.resources
    # As many pool actors as the cluster's CPUs hold at the task type's request: Ray Data
    # starts them as resources free up, and rows wait on I/O part of the time.
    pool = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1) // max(resources.cpus, 0.1)))
    memory: dict[str, Any] = {"memory": resources.memory_mb * 1024 * 1024} if resources.memory_mb else {}
    results = dataset.map_batches(
        _Rows,
        fn_constructor_kwargs={
            "task_name": task_name,
            "params": params or {},
            "settings": settings,
            "account": account,
            "task_store": task_store or {"type": "persistent"},
            "done": done_keys,
            "batch_id": batch_id or uuid.uuid4().hex[:12],
        },
        batch_size=ROWS_PER_CALL,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool),
        num_cpus=resources.cpus,
        **memory,
    )
    started = time.monotonic()
    with _Parts(output, part_rows) as parts:
        for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = cast(pa.Table, batch)
            statuses = table.column("status").to_pylist()
            progress.skipped += statuses.count("skipped")
            table = table.filter(pc.not_equal(table.column("status"), "skipped"))
            progress.done += table.num_rows
            progress.failed += statuses.count("error")
            progress.rate = round(progress.done / max(time.monotonic() - started, 1e-6), 2)
            parts.add(table)
            if on_progress:
                on_progress(progress)
    return progress


def read_results(output: str | Path) -> pa.Table:
    """Every part of a results directory as one table (parts written before any row
    succeeded may lack a column's type; the schemas are unified)."""
    files = sorted(Path(output).glob("part-*.parquet"))
    if not files:
        return pa.table({"key": pa.array([], pa.string()), "status": pa.array([], pa.string())})
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")


def row_key(row: dict[str, Any]) -> str:
    """The row's own ``key``, or a digest of its content."""
    if _given(row.get("key")) and row["key"] != "":
        return str(row["key"])
    canonical = json.dumps({k: v for k, v in row.items() if k != "key" and _given(v)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _digest(key: str) -> np.uint64:
    return np.frombuffer(hashlib.sha256(key.encode()).digest()[:8], dtype=np.uint64)[0]


class _Rows:
    """A Ray Data pool actor: runs task rows, one after another, like a worker would."""

    def __init__(
        self,
        task_name: str,
        params: dict[str, Any],
        settings: Settings,
        account: str,
        task_store: dict[str, Any],
        done: np.ndarray,
        batch_id: str,
    ):
        registry.load(settings.task_modules)
        self._task = registry.get(task_name)
        self._params, self._settings, self._account = params, settings, account
        self._store, self._done, self._batch = task_store, done, batch_id
        self._storage = storage.local_storage(settings)

    def __call__(self, batch: pa.Table) -> pa.Table:
        assert self._task is not None
        rows = []
        kept = tuple(name for name in KEPT_INPUTS if name in batch.column_names)
        for row in batch.to_pylist():
            key = row_key(row)
            inputs = {name: row[name] for name in kept}
            if self._done.size and np.isin(_digest(key), self._done):
                rows.append({"key": key, **inputs, "status": "skipped"})
                continue
            rows.append({"key": key, **inputs, **self._run(key, {k: v for k, v in row.items() if k != "key"})})
        return _table(rows, kept, self._task.values, self._task.files)

    def _run(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        """One row's outcome; nothing a row does stops the batch. Its outputs are stored
        under ``<batch>/<digest of the row key>/``, never under a name the manifest chose."""
        assert self._task is not None
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        task_key = f"{self._batch}/{digest}"
        scratch = self._settings.scratch_dir / f"batch-{self._batch}-{digest}-{uuid.uuid4().hex[:6]}"
        try:
            return self._attempt(task_key, row, scratch)
        except Exception as exc:  # a bug around the task must not abort the dataset
            return {"status": "error", "error": _error_text(status_error(exc))}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _attempt(self, task_key: str, row: dict[str, Any], scratch: Path) -> dict[str, Any]:
        assert self._task is not None
        try:
            definition = {**self._params, **{k: v for k, v in row.items() if _given(v)}}
            record = TaskRecord(task_key, self._account, self._task.name, self._task.validate(definition), self._store)
        except InvalidParametersError as exc:
            return {"status": "error", "error": _error_text(status_error(exc))}
        io = RunIO(self._settings, self._storage, record, scratch)
        ctx = registry.TaskContext(task_key, self._account, 1, scratch, io, self._settings, self._store)
        outcome = run_task(ctx, record)
        if outcome.error is not None:
            return {"status": "error", "error": _error_text(outcome.error)}
        if not (self._task.values or self._task.files) or not isinstance(outcome.result, dict):
            return {"status": "success", "result": json.dumps(outcome.result)}
        return {"status": "success", **outcome.result}


def _given(value: Any) -> bool:
    """Whether a manifest cell holds a value: readers fill a row's missing cells with
    null, or NaN where the column's other cells are numbers."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _table(
    rows: list[dict[str, Any]], inputs: tuple[str, ...], values: tuple[str, ...], files: tuple[str, ...]
) -> pa.Table:
    """Rows as Arrow columns: scalars and lists keep their types, objects become JSON. A
    task type that declares no values or files gets its whole result in ``result``."""
    columns: dict[str, list[Any]] = {"key": [], **{name: [] for name in inputs}, "status": [], "error": []}
    for name in (*values, *files) if values or files else ("result",):
        columns[name] = []
    for row in rows:
        for name, cells in columns.items():
            value = row.get(name)
            cells.append(json.dumps(value) if isinstance(value, dict) else value)
    return pa.table({name: _array(cells) for name, cells in columns.items()})


def _array(cells: list[Any]) -> pa.Array:
    try:
        return pa.array(cells)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them readable as JSON
        return pa.array([None if c is None else json.dumps(c) for c in cells], pa.string())


def _error_text(error: Any) -> str:
    if isinstance(error, dict):  # invalid parameters: {"parameters": {field: [messages]}}
        return f"InvalidParametersError: {json.dumps(error['parameters'], sort_keys=True)}"
    return str(error)


def _keep_successes(output: Path) -> np.ndarray:
    """Digests of the keys that already succeeded; earlier failed rows are dropped from
    their parts (each part rewritten whole), so a re-run leaves one row per input."""
    digests: list[np.uint64] = []
    for part in sorted(output.glob("part-*.parquet")):
        table = pq.read_table(part)
        succeeded = table.filter(pc.equal(table.column("status"), "success"))
        if succeeded.num_rows < table.num_rows:
            if succeeded.num_rows:
                _write_atomically(succeeded, part)
            else:
                part.unlink()
        digests.extend(_digest(k) for k in succeeded.column("key").to_pylist())
    return np.sort(np.array(digests, dtype=np.uint64))


def _count_rows(manifest: Path, kind: str) -> int:
    """Rows in the manifest, read in a streaming pass (Parquet: from its footer)."""
    if kind == "parquet":
        return pq.ParquetFile(manifest).metadata.num_rows
    with manifest.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(0, lines - 1) if kind == "csv" else lines


def _write_atomically(table: pa.Table, path: Path) -> None:
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(path)


class _Parts:
    """Writes result rows as whole Parquet parts, closed every ``rows`` rows or
    PART_SECONDS seconds: an interruption loses at most the part being filled."""

    def __init__(self, output: Path, rows: int):
        self._output = output
        self._limit = rows
        self._run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._pending: list[pa.Table] = []
        self._rows = 0
        self._count = 0
        self._since = time.monotonic()

    def __enter__(self) -> _Parts:
        return self

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._pending.append(table)
            self._rows += table.num_rows
        if self._rows >= self._limit or (self._rows and time.monotonic() - self._since >= PART_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self._rows:
            table = pa.concat_tables(self._pending, promote_options="permissive")
            _write_atomically(table, self._output / f"part-{self._run}-{self._count:05d}.parquet")
            self._count += 1
        self._pending, self._rows, self._since = [], 0, time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.flush()
