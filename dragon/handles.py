"""Ray-handle access to a running service, for Python code on the cluster.

Same operations and same status objects as the HTTP API, through
:class:`dragon.service.Service`; the account is named instead of authenticated,
since whoever can reach the cluster's actors is already trusted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from dragon.config import Settings, prepare_ray_environment

if TYPE_CHECKING:
    from dragon.batches import Progress


class Dragon:
    def __init__(self, service: Any, account: Any):
        self._service = service
        self._account = account
        self._loop = asyncio.new_event_loop()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def create(self, tasks: dict | list[dict], block: bool = False) -> list[dict[str, Any]]:
        definitions = tasks if isinstance(tasks, list) else [tasks]
        return self._run(self._service.create(self._account, definitions, block=block))

    def status(self, keys: str | list[str], details: bool = False) -> list[dict[str, Any]]:
        return self._run(self._service.status(_keys(keys), details=details))

    def wait(self, keys: str | list[str]) -> list[dict[str, Any]]:
        return self._run(self._service.status(_keys(keys), block=True))

    def stream(self, keys: str | list[str]) -> Iterator[Any]:
        """Yields the list of current statuses, then each change until all have ended."""
        first, changes = self._run(self._service.open_stream(_keys(keys)))
        yield first
        while True:
            try:
                yield self._run(changes.__anext__())
            except StopAsyncIteration:
                return

    def create_stream(self, tasks: dict | list[dict]) -> Iterator[Any]:
        return self.stream([doc["key"] for doc in self.create(tasks)])

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
        return batches.run(task_name, Path(input), Path(output), settings, self._account.name, params, task_store,
                           on_progress, concurrency, part_rows=part_rows or batches.PART_ROWS)


def connect(account: str = "dev", address: str | None = None, namespace: str = "dragon") -> Dragon:
    """Attach to a running Dragon deployment on the Ray cluster at ``address`` (default:
    the one `dragon serve` recorded in its data dir, else Ray's ``auto``)."""
    prepare_ray_environment()
    import ray

    from dragon.service import Service

    if not ray.is_initialized():
        ray.init(address=address or Settings().recorded_ray_address() or "auto", namespace=namespace)
    service = Service.lookup(namespace)
    found = ray.get(service.shards.handles[0].account.remote(name=account))
    if found is None:
        raise LookupError(f"no account named {account!r}")
    return Dragon(service, found)


def batch(task_name: str, input: str | Path, output: str | Path, params: dict[str, Any] | None = None,
          account: str = "dev", address: str | None = None, **options: Any) -> Progress:
    """``connect(account, address).batch(...)``: one task type over a manifest."""
    return connect(account, address).batch(task_name, input, output, params, **options)


def _keys(keys: str | list[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)
