"""The one task registry: every task type is declared here once, with its parameter
schema, the resources it needs and the function that runs it.

Task modules register themselves with the :func:`task` decorator; :func:`load` imports
the built-in modules plus any the operator names in ``DRAGON_TASK_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dragon.config import Settings
from dragon.errors import InvalidParametersError
from dragon.storage.fetch import Fetched, Fetcher

BUILTIN_MODULES = (
    "dragon.tasks.hello",
    "dragon.tasks.audio",
    "dragon.tasks.image",
    "dragon.tasks.video",
    "dragon.tasks.html",
    "dragon.tasks.upload",
    "dragon.tasks.batch",
    "dragon.tasks.movie",
)


class TaskParams(BaseModel):
    """Parameters every task accepts. Unknown keys are dropped, never an error."""

    model_config = ConfigDict(extra="ignore")

    url_callback: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="POSTed the final status when the task succeeds (docs/callbacks.md).",
    )
    url_errback: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="POSTed the final status when the task fails or is canceled.",
    )


@dataclass(frozen=True)
class Resources:
    """What one run needs from the cluster: ``gpu`` is the share of a GPU it asks for (so
    several light tasks can share one) when ``Settings.use_gpus`` says so (dragon/placement.py); it also runs without.
    ``pooled``: it runs in a node's long-lived task actor where there is one (warm imports
    and models, a kept CUDA context: dragon/actors/pool.py), else as a stateless Ray task."""

    cpus: float = 1.0
    gpu: float = 0.0
    memory_mb: int | None = None
    pooled: bool = False


class TaskIO(Protocol):
    """What the worker provides to task code for inputs, outputs and reporting."""

    def fetch(self, url: str, max_bytes: int | None = None, truncate: bool = False) -> Fetched: ...

    def local(self, url: str) -> Path | None: ...

    def store(self, path: Path, extension: str, content_type: str, main: bool = True) -> str: ...

    def report(self, progress: Any, partial_result: dict[str, Any] | None) -> None: ...


class TaskContext:
    """What a running task may use: its key, a private scratch directory (created on
    first use, removed when the attempt ends), input fetching, output storing, and
    progress reporting. Built by the worker, handed down to tasks. ``settings`` and
    ``task_store`` are for task types that run others (batch); ``helpers`` for those
    that spread their work over the cluster (video.create's segments)."""

    def __init__(
        self,
        key: str,
        account: str,
        attempt: int,
        scratch: Path,
        io: TaskIO,
        settings: Settings,
        task_store: dict[str, Any],
        helpers: Callable[[], list[Any]] = list,
    ):
        self.key = key
        self.account = account
        self.attempt = attempt
        self.settings = settings
        self.task_store = task_store
        self._scratch = scratch
        self._io = io
        self._helpers = helpers
        self.warnings: list[str] = []

    def helpers(self) -> list[Any]:
        """The cluster's pool members that are up now (handles of
        dragon.actors.pool.PoolMember), for work worth a long-lived process; empty
        where there are no pools."""
        return self._helpers()

    @property
    def scratch(self) -> Path:
        self._scratch.mkdir(parents=True, exist_ok=True)
        return self._scratch

    def fetch(self, url: str, max_bytes: int | None = None, truncate: bool = False) -> Fetched:
        """Download an input URL into the scratch directory (SSRF-safe, bounded; with
        ``truncate``, a larger input is cut at the limit instead of refused)."""
        return self._io.fetch(url, max_bytes, truncate)

    @contextmanager
    def open(self, url: str, max_bytes: int | None = None) -> Iterator[Path | BinaryIO]:
        """An input for readers that seek (PyAV, Pillow): a file object reading ``url`` by
        HTTP range where the origin serves ranges, so probing or a few frames cost only
        the bytes they need (under the same guard and limits as ``fetch``); else the
        file downloaded by ``fetch`` (our own outputs are read from storage that way).
        An output of this service that is a file on this node (a pipeline's previous step)
        is read in place."""
        local = self._io.local(url)
        if local is not None:
            yield local
            return
        remote = Fetcher(self.settings).open(url, max_bytes)
        if remote is None:
            yield self.fetch(url, max_bytes).path
            return
        with remote:
            yield cast(BinaryIO, remote)  # a seekable binary file object, as PyAV and Pillow read

    def store(self, path: Path, extension: str, content_type: str, main: bool = True) -> str:
        """Place an output file in the task's store; returns its URL. ``main`` marks the
        file an ``s3_signed`` store receives. The file is handed over (it may be
        hard-linked into storage): do not write to it afterwards."""
        return self._io.store(path, extension, content_type, main)

    def progress(self, value: Any) -> None:
        self._io.report(value, None)

    def partial_result(self, result: dict[str, Any], progress: Any = None) -> None:
        self._io.report(progress, result)

    def warn(self, message: str) -> None:
        """Something in the input was ignored; the client reads it in ``details``."""
        if message not in self.warnings:
            self.warnings.append(message)


TaskFunction = Callable[[TaskContext, Any], Any]


@dataclass(frozen=True)
class TaskType:
    name: str
    params: type[TaskParams]
    run: TaskFunction
    resources: Resources = Resources()
    values: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    doc: str = ""

    def validate(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Validated parameters as JSON-compatible data, or InvalidParametersError."""
        try:
            model = self.params.model_validate(definition)
        except ValidationError as exc:
            raise InvalidParametersError(_field_messages(exc)) from None
        return model.model_dump(mode="json")

    def parse(self, params: dict[str, Any]) -> TaskParams:
        return self.params.model_validate(params)


_REGISTRY: dict[str, TaskType] = {}
_loaded: set[str] = set()


def task(
    name: str,
    params: type[TaskParams],
    *,
    resources: Resources = Resources(),
    values: Iterable[str] = (),
    files: Iterable[str] = (),
) -> Callable[[TaskFunction], TaskFunction]:
    def register(fn: TaskFunction) -> TaskFunction:
        if name in _REGISTRY and _REGISTRY[name].run is not fn:
            raise ValueError(f"task type {name!r} is registered twice")
        _REGISTRY[name] = TaskType(
            name=name,
            params=params,
            run=fn,
            resources=resources,
            values=tuple(values),
            files=tuple(files),
            doc=(fn.__doc__ or "").strip(),
        )
        return fn

    return register


def load(extra_modules: Iterable[str] = ()) -> dict[str, TaskType]:
    for module in (*BUILTIN_MODULES, *extra_modules):
        if module not in _loaded:
            importlib.import_module(module)
            _loaded.add(module)
    return _REGISTRY


def get(name: str) -> TaskType | None:
    return _REGISTRY.get(name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def _field_messages(exc: ValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "parameters"
        message = "this field is required" if err["type"] == "missing" else err["msg"]
        fields.setdefault(name, []).append(message)
    return fields
