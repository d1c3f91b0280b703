"""The operations of the Tasks API, independent of HTTP: create, status, wait, stream.

The Serve deployment calls these for REST clients; :func:`dragon.connect` gives Python
users on the cluster the same operations through Ray handles, no HTTP involved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, AsyncIterator

import ray
from ray.exceptions import RayTaskError

from dragon import registry
from dragon.accounts import Account
from dragon.actors.jobs import ACTOR_NAME as JOBS_ACTOR
from dragon.actors.storage import actor_name as storage_actor_name
from dragon.actors.status import Statuses, shard_of
from dragon.config import Settings
from dragon.errors import InvalidParametersError, RequestError
from dragon.status import ENDED, TaskRecord, new_key, redact
from dragon.storage.stores import validate_store

class Service:
    def __init__(
        self, settings: Settings, jobs: ray.actor.ActorHandle, statuses: Statuses, storage: list[ray.actor.ActorHandle]
    ):
        self.settings = settings
        self.jobs = jobs
        self.statuses = statuses
        self.storage = storage
        registry.load(settings.task_modules)

    @classmethod
    def lookup(cls, namespace: str) -> Service:
        """Bind to the actors of a running deployment, with the settings it runs with."""
        jobs = ray.get_actor(JOBS_ACTOR, namespace=namespace)
        settings = ray.get(jobs.settings.remote())
        storage = [
            ray.get_actor(storage_actor_name(i), namespace=namespace) for i in range(settings.storage_actors)
        ]
        return cls(settings, jobs, Statuses.lookup(settings), storage)

    async def ready(self) -> dict[str, Any]:
        return await self.jobs.ready.remote()

    async def create(
        self, account: Account, definitions: list[Any], block: bool = False, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        if not definitions:
            raise RequestError("tasks", "tasks is empty")
        if len(definitions) > self.settings.max_tasks_per_request:
            raise RequestError("tasks", f"at most {self.settings.max_tasks_per_request} tasks per request")
        tasks = [self._prepare(account, i, d) for i, d in enumerate(definitions)]
        idempotency = None
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 255:
                raise RequestError("Idempotency-Key", "must be a string of 1 to 255 characters", "header")
            canonical = json.dumps(definitions, sort_keys=True, separators=(",", ":"), default=str)
            idempotency = (idempotency_key, hashlib.sha256(canonical.encode()).hexdigest())
        try:
            docs = await self.jobs.submit.remote(account, tasks, idempotency)
        except RayTaskError as exc:  # the job manager refused: hand its reason on
            raise exc.cause from None
        if block:
            return await self.status([doc["key"] for doc in docs], block=True)
        return docs

    async def status(self, keys: list[str], block: bool = False, details: bool = False) -> list[dict[str, Any]]:
        if block:
            found = await self.statuses.wait_ended(keys, self.settings.block_timeout)
        else:
            found = await self.statuses.get(keys)
        docs = _known(keys, found)
        if details:
            found = await self.statuses.details(keys)
            for doc in docs:
                record, attempts, delivery, warnings = found[doc["key"]]
                doc["details"] = {
                    "task_name": record.task_name,
                    "parameters": redact(record.params),
                    "task_store": redact(record.task_store),
                    "extra": redact(record.extra),
                    "attempts": attempts,
                    "warnings": warnings,
                    "callback": delivery and {
                        "id": delivery.id,
                        "url": delivery.url,
                        "state": delivery.state,
                        "attempts": delivery.attempts,
                    },
                }
        return docs

    async def cancel(self, account: Account, keys: list[str]) -> dict[str, Any]:
        """Cancel the account's queued and running tasks; ended ones are left as they are."""
        outcome = await self.jobs.cancel.remote(account.name, keys)
        unknown = [k for k in keys if outcome[k] == "unknown"]
        if unknown:
            raise RequestError("tasks", f"there is no task with this ID: {unknown[0]}")
        return {
            "canceled": [k for k in keys if outcome[k] == "canceled"],
            "already_ended": [k for k in keys if outcome[k] == "ended"],
            "statuses": await self.status(keys),
        }

    # the Storage API: any storage actor can answer for any account

    def _storage_for(self, account: Account) -> ray.actor.ActorHandle:
        return self.storage[hash(account.name) % len(self.storage)]

    async def list_files(self, account: Account, path: str, recursive: bool) -> dict[str, Any]:
        return await self._storage_for(account).listing.remote(account.name, path, recursive)

    async def delete_files(self, account: Account, path: str, **selection: Any) -> dict[str, Any]:
        return await self._storage_for(account).delete.remote(account.name, path, **selection)

    async def store_upload(self, account: Account, path: Path, extension: str, content_type: str) -> str:
        """A client's file into its persistent storage, under a fresh key: its URL is an
        input like any other (the fetcher reads the service's own URLs from storage)."""
        key = new_key()
        actor = self.storage[shard_of(key, len(self.storage))]
        for source in (str(path), path.read_bytes):
            data = source() if callable(source) else source
            url = await actor.store.remote(account.name, key, "upload", {"type": "persistent"}, data, extension,
                                           content_type, True)
            if url is not None:
                return url
        raise RequestError("body", "the upload could not be stored", "body", 503)

    async def expiration(self, account: Account, days: int | None = None) -> int:
        return await self._storage_for(account).expiration.remote(account.name, days)

    async def open_stream(self, keys: list[str]) -> tuple[list[dict[str, Any]], AsyncIterator[dict[str, Any]]]:
        """The first line (current statuses, in order) and an iterator of every later change.

        Unknown keys raise before anything is sent, so HTTP can still answer 400.
        """
        current = await self.statuses.get(keys)
        first = _known(keys, current)
        cursors = {k: found[0] for k, found in zip(keys, current) if found and found[1]["status"] not in ENDED}
        return first, self._follow(cursors)

    async def _follow(self, cursors: dict[str, int]) -> AsyncIterator[dict[str, Any]]:
        while cursors:
            for key, version, doc in await self.statuses.changes(cursors, self.settings.stream_poll_timeout):
                if key not in cursors:
                    continue
                cursors[key] = version
                yield doc
                if doc["status"] in ENDED:
                    del cursors[key]


    def _prepare(self, account: Account, index: int, definition: Any) -> tuple[TaskRecord, Any]:
        """A task record and its validation error (None when valid)."""
        where = f"tasks.{index}"
        if not isinstance(definition, dict):
            raise RequestError(where, "a task definition must be an object")
        task_name = definition.get("task_name")
        if not isinstance(task_name, str) or not task_name:
            raise RequestError(f"{where}.task_name", "task_name is missing")
        task_type = registry.get(task_name)
        if task_type is None:
            raise RequestError(f"{where}.task_name", f"{task_name!r} is not a task name; choose one of: {', '.join(registry.names())}")
        store = definition.get("task_store")
        raw = {k: v for k, v in definition.items() if k not in ("task_name", "task_store")}
        fields = task_type.params.model_fields
        extra = {k: v for k, v in raw.items() if k not in fields}
        error: Any = None
        params: dict[str, Any] = raw
        try:
            params = task_type.validate(raw)
            store = validate_store(store)
        except InvalidParametersError as exc:
            error = exc.as_status_error()
        record = TaskRecord(
            key=new_key(),
            account=account.name,
            task_name=task_name,
            params=params,
            task_store=store if isinstance(store, dict) else {"type": "persistent"},
            extra=extra,
        )
        return record, error


def _known(keys: list[str], found: list[tuple[int, dict[str, Any]] | None]) -> list[dict[str, Any]]:
    for key, item in zip(keys, found):
        if item is None:
            raise RequestError("tasks", f"there is no task with this ID: {key}", "querystring")
    return [item[1] for item in found]  # type: ignore[index]
