"""Ray-handle access to a running service, for Python code on the cluster.

Same operations and same status objects as the HTTP API, through
:class:`dragon.service.Service`; the account is named instead of authenticated,
since whoever can reach the cluster's actors is already trusted.

Ray users call from everywhere: a driver script, Jupyter (whose event loop is already
running), Ray tasks, threaded and async actors, Serve deployments (async actors too). So:

- :class:`AsyncDragon` (``d.aio``) is the API as coroutines, awaited on the caller's own
  loop: ``await d.aio.create(...)``, ``async for s in d.aio.stream(keys)``.
- :class:`Dragon` is the same API blocking, for code without a loop or inside one it may
  block (a notebook cell): its coroutines run on one private loop in a daemon thread of
  this process, never on the caller's loop, so a running loop does not get in the way.
- ``submit`` answers one ``ObjectRef`` per task, resolved to its final status by a small
  detached async actor (``dragon-finals``, no CPU), so they compose with Ray:
  ``ray.get``, ``ray.wait``, ``await ref`` and passing them on to Ray tasks.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    TypeVar,
)

from dragon.config import Settings, prepare_ray_environment
from dragon.status import ENDED

if TYPE_CHECKING:
    import ray

    from dragon.accounts import Account
    from dragon.batches import Progress
    from dragon.service import Service

T = TypeVar("T")
FINALS = "dragon-finals"


class AsyncDragon:
    """The API as coroutines on the caller's event loop."""

    def __init__(self, service: Service, account: Account, namespace: str):
        self._service = service
        self._account = account
        self._namespace = namespace

    async def create(self, tasks: dict | list[dict], block: bool = False) -> list[dict[str, Any]]:
        definitions = tasks if isinstance(tasks, list) else [tasks]
        return await self._service.create(self._account, definitions, block=block)

    async def status(self, keys: str | list[str], details: bool = False) -> list[dict[str, Any]]:
        return await self._service.status(_keys(keys), details=details)

    async def wait(self, keys: str | list[str]) -> list[dict[str, Any]]:
        """Final statuses, however long the tasks take (past the service's block timeout)."""
        return await _final(self._service, _keys(keys))

    async def stream(self, keys: str | list[str]) -> AsyncGenerator[Any, None]:
        """Yields the list of current statuses, then each change until all have ended."""
        first, changes = await self._service.open_stream(_keys(keys))
        yield first
        async for change in changes:
            yield change

    async def create_stream(self, tasks: dict | list[dict]) -> AsyncGenerator[Any, None]:
        async for line in self.stream([doc["key"] for doc in await self.create(tasks)]):
            yield line

    async def cancel(self, keys: str | list[str]) -> dict[str, Any]:
        return await self._service.cancel(self._account, _keys(keys))

    async def submit(self, tasks: dict | list[dict]) -> list[ray.ObjectRef]:
        """Create the tasks now (refusals raise here) and answer one ``ObjectRef`` per
        task, in order, that resolves to its final status."""
        created = await self.create(tasks)
        finals = _finals(self._namespace)
        return [finals.final.remote(doc["key"]) for doc in created]


class Dragon:
    """The API blocking, usable with or without a running event loop in this thread."""

    def __init__(self, service: Service, account: Account, namespace: str = "dragon"):
        self._service = service
        self._account = account
        self.aio = AsyncDragon(service, account, namespace)

    def create(self, tasks: dict | list[dict], block: bool = False) -> list[dict[str, Any]]:
        return _LOOP.run(self.aio.create(tasks, block))

    def status(self, keys: str | list[str], details: bool = False) -> list[dict[str, Any]]:
        return _LOOP.run(self.aio.status(keys, details))

    def wait(self, keys: str | list[str]) -> list[dict[str, Any]]:
        return _LOOP.run(self.aio.wait(keys))

    def stream(self, keys: str | list[str]) -> Iterator[Any]:
        """Yields the list of current statuses, then each change until all have ended."""
        return _LOOP.iterate(self.aio.stream(keys))

    def create_stream(self, tasks: dict | list[dict]) -> Iterator[Any]:
        return _LOOP.iterate(self.aio.create_stream(tasks))

    def cancel(self, keys: str | list[str]) -> dict[str, Any]:
        return _LOOP.run(self.aio.cancel(keys))

    def submit(self, tasks: dict | list[dict]) -> list[ray.ObjectRef]:
        """One ``ObjectRef`` per task created, resolving to its final status: ``ray.get``,
        ``ray.wait`` or pass them to Ray tasks."""
        return _LOOP.run(self.aio.submit(tasks))

    def batch(
        self,
        task_name: str,
        input: str | Path,
        output: str | Path,
        params: dict[str, Any] | None = None,
        task_store: dict[str, Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        concurrency: int | None = None,
        part_rows: int | None = None,
    ) -> Progress:
        """Run ``task_name`` over the rows of the manifest ``input`` from this process
        (the driver); results in the Parquet directory ``output``. See dragon.batches."""
        from dragon import batches

        settings = self._service.settings
        return batches.run(
            task_name,
            Path(input),
            Path(output),
            settings,
            self._account.name,
            params,
            task_store,
            on_progress,
            concurrency,
            part_rows=part_rows or batches.PART_ROWS,
        )


class _LoopThread:
    """One event loop in a daemon thread, started on first use, that runs the blocking
    API's coroutines whatever loop the calling thread has (or not)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="dragon-handles", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._started()
        if _running_loop() is loop:
            raise RuntimeError("the blocking API was called from its own loop: use d.aio there")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def iterate(self, items: AsyncGenerator[T, None]) -> Iterator[T]:
        async def step() -> T:
            return await items.__anext__()

        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self.run(items.aclose())


_LOOP = _LoopThread()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _final(service: Service, keys: list[str]) -> list[dict[str, Any]]:
    while True:
        statuses = await service.status(keys, block=True)
        if all(s["status"] in ENDED for s in statuses):
            return statuses


class _Finals:
    """The actor behind ``submit``'s ObjectRefs: async, so one process waits for any
    number of tasks; named and detached, so every caller shares it and it outlives
    whichever task or driver created it first."""

    def __init__(self, namespace: str):
        from dragon.service import Service

        self._service = Service.lookup(namespace)

    async def final(self, key: str) -> dict[str, Any]:
        [status] = await _final(self._service, [key])
        return status


@functools.cache
def _finals(namespace: str) -> ray.actor.ActorHandle:
    import ray

    actor = ray.remote(_Finals).options(
        name=FINALS, namespace=namespace, lifetime="detached", get_if_exists=True, num_cpus=0, max_concurrency=10_000
    )
    return actor.remote(namespace)  # type: ignore[return-value]


def connect(account: str = "dev", address: str | None = None, namespace: str = "dragon") -> Dragon:
    """Attach to a running Dragon deployment on the Ray cluster at ``address`` (default:
    the one `dragon serve` recorded in its data dir, else Ray's ``auto``); inside a Ray
    task or actor, the cluster it runs on."""
    prepare_ray_environment()
    import ray

    from dragon.service import Service

    if not ray.is_initialized():
        ray.init(address=address or Settings().recorded_ray_address() or "auto", namespace=namespace)
    service = Service.lookup(namespace)
    found = _LOOP.run(service.account(name=account))
    if found is None:
        raise LookupError(f"no account named {account!r}")
    return Dragon(service, found, namespace)


def batch(
    task_name: str,
    input: str | Path,
    output: str | Path,
    params: dict[str, Any] | None = None,
    account: str = "dev",
    address: str | None = None,
    **options: Any,
) -> Progress:
    """``connect(account, address).batch(...)``: one task type over a manifest."""
    return connect(account, address).batch(task_name, input, output, params, **options)


def _keys(keys: str | list[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)
