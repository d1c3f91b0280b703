"""Ray-handle access to a running service, for Python code on the cluster.

Same operations and same status objects as the HTTP API, through
:class:`dragon.service.Service`; the account is named instead of authenticated,
since whoever can reach the cluster's actors is already trusted.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

from dragon.config import prepare_ray_environment


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


def connect(account: str = "dev", address: str = "auto", namespace: str = "dragon") -> Dragon:
    """Attach to a running Dragon deployment on the Ray cluster at ``address``."""
    prepare_ray_environment()
    import ray

    from dragon.service import Service

    if not ray.is_initialized():
        ray.init(address=address, namespace=namespace)
    service = Service.lookup(namespace)
    found = ray.get(service.jobs.account.remote(name=account))
    if found is None:
        raise LookupError(f"no account named {account!r}")
    return Dragon(service, found)


def _keys(keys: str | list[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)
