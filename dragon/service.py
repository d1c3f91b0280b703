"""The operations of the Tasks API, independent of HTTP: create, status, wait, stream,
cancel, and the Storage API.

The Serve deployment calls these for REST clients; :func:`dragon.connect` gives Python
users on the cluster the same operations through Ray handles, no HTTP involved. Refusals
are domain errors (dragon/errors.py); dragon/serve/ maps them to HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import ray

from dragon import pipelines, registry, sxml
from dragon.accounts import Account
from dragon.actors.messages import Idempotency, NewTask, Submission
from dragon.actors.routing import Shards, refusals
from dragon.actors.shard import actor_name
from dragon.actors.storage import local_storage
from dragon.config import Settings
from dragon.errors import (
    InvalidParametersError,
    InvalidRequestError,
    InvalidXMLError,
    UnavailableError,
    UnknownTaskError,
)
from dragon.journal import History
from dragon.protocol import HistoryQuery, SxmlCheck
from dragon.status import ENDED, TaskRecord, TaskStatus, is_key, new_key, redact
from dragon.storage.stores import validate_store
from dragon.sxml import Node
from dragon.sxml.timing import TIMED


class Service:
    def __init__(self, settings: Settings, shards: Shards, storage: ray.actor.ActorHandle):
        self.settings = settings
        self.shards = shards
        self.storage = storage
        registry.load(settings.task_modules)

    @classmethod
    def lookup(cls, namespace: str) -> Service:
        """Bind to the actors of a running deployment, with the settings it runs with."""
        settings = cast(Settings, ray.get(ray.get_actor(actor_name(0), namespace=namespace).settings.remote()))
        return cls(settings, Shards.lookup(settings), local_storage(settings))

    async def ready(self) -> dict[str, Any]:
        return await self.shards.ready()

    async def accounts(self) -> list[Account]:
        return await self.shards.accounts()

    async def account(self, **credential: str) -> Account | None:
        """By ``name``, ``secret_hash`` or ``api_key_hash``."""
        return await self.shards.account(**credential)

    async def create(
        self, account: Account, definitions: list[Any], block: bool = False, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Create tasks, all owned by one shard; with ``block``, answer once they have ended
        (or the block timeout passes)."""
        if not definitions:
            raise InvalidRequestError("tasks", "tasks is empty")
        if len(definitions) > self.settings.max_tasks_per_request:
            raise InvalidRequestError("tasks", f"at most {self.settings.max_tasks_per_request} tasks per request")
        idempotency = None
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 255:
                raise InvalidRequestError("Idempotency-Key", "must be a string of 1 to 255 characters")
            canonical = json.dumps(definitions, sort_keys=True, separators=(",", ":"), default=str)
            idempotency = Idempotency(idempotency_key, hashlib.sha256(canonical.encode()).hexdigest())
        shard = self.shards.pick(account.name, idempotency_key)
        keys = [new_key(shard, len(self.shards)) for _ in definitions]
        refs = pipelines.references(definitions)
        pipelines.check_order(refs, len(definitions))
        tasks = [
            self._prepare(
                account,
                key,
                i,
                pipelines.substitute(d, [r for r in refs if r.index == i], keys) if isinstance(d, dict) else d,
            )
            for i, (key, d) in enumerate(zip(keys, definitions))
        ]
        if refs:
            tasks = await self._pipeline(account, tasks, refs, keys)
        wait = self.settings.block_timeout if block else 0.0
        return await self.shards.create(shard, Submission(account, tasks, idempotency, wait))

    async def status(self, keys: list[str], block: bool = False, details: bool = False) -> list[dict[str, Any]]:
        if block:
            found = await self.shards.wait_ended(keys, self.settings.block_timeout)
        else:
            found = await self.shards.get(keys)
        docs = _known(keys, found)
        if details:
            more = await self.shards.details(keys)
            for doc in docs:
                d = more[doc["key"]]
                doc["details"] = {
                    "task_name": d.record.task_name,
                    "parameters": redact(d.record.params),
                    "task_store": redact(d.record.task_store),
                    "extra": redact(d.record.extra),
                    "attempts": d.attempts,
                    "warnings": d.warnings,
                    "callback": d.delivery,
                }
                if d.record.uses:  # a pipeline's task: the outputs it takes as inputs
                    doc["details"]["uses"] = [
                        {k: use[k] for k in ("parameter", "item", "task", "result")} for use in d.record.uses
                    ]
        return docs

    async def cancel(self, account: Account, keys: list[str]) -> dict[str, Any]:
        """Cancel the account's queued and running tasks; ended ones are left as they are."""
        outcome = await self.shards.cancel(account.name, keys)
        unknown = [k for k in keys if outcome[k] == "unknown"]
        if unknown:
            raise UnknownTaskError(unknown[0])
        return {
            "canceled": [k for k in keys if outcome[k] == "canceled"],
            "already_ended": [k for k in keys if outcome[k] == "ended"],
            "statuses": await self.status(keys),
        }

    async def history(self, account: Account, query: HistoryQuery) -> dict[str, Any]:
        """A page of the account's tasks, newest first, read from the journal (the
        statuses it holds are those published), and the cursor of the next page."""
        rows = await self.shards.history(
            History(
                account.name,
                tuple(query.status or ()),
                query.task_name,
                _utc(query.from_),
                _utc(query.to),
                _position(query.cursor),
                query.limit + 1,
            )
        )
        page = rows[: query.limit]
        cursor = _cursor(*page[-1][:2]) if len(rows) > query.limit else None
        return {"tasks": [TaskStatus.from_json(json.loads(status)).public() for _, _, status in page], "cursor": cursor}

    async def usage(self, account: Account) -> dict[str, int]:
        """The account's tasks running and queued now, as the journal holds them: a task
        counts as running once it has reported ``executing``."""
        counts = await self.shards.unfinished_counts(account.name)
        return {"running": counts["executing"], "queued": counts["queued"]}

    async def check_sxml(self, definition: str, lengths: dict[str, float]) -> dict[str, Any]:
        """A video.create definition parsed, validated and timed as the renderer would,
        without fetching anything: sources of unknown length are timed as the renderer
        times a source whose length no attribute gives, and listed."""
        return (await asyncio.to_thread(check_sxml, definition, lengths)).model_dump()

    async def open_stream(self, keys: list[str]) -> tuple[list[dict[str, Any]], AsyncIterator[dict[str, Any]]]:
        """The first line (current statuses, in order) and an iterator of every later change.

        Unknown keys raise before anything is sent, so HTTP can still answer 400.
        """
        current = await self.shards.get(keys)
        first = _known(keys, current)
        cursors = {k: found[0] for k, found in zip(keys, current) if found and found[1]["status"] not in ENDED}
        return first, self._follow(cursors)

    async def _follow(self, cursors: dict[str, int]) -> AsyncIterator[dict[str, Any]]:
        while cursors:
            for key, version, doc in await self.shards.changes(cursors, self.settings.stream_poll_timeout):
                if key not in cursors:
                    continue
                cursors[key] = version
                yield doc
                if doc["status"] in ENDED:
                    del cursors[key]

    # the Storage API: metadata only, through this node's storage actor

    async def list_files(self, account: Account, path: str, recursive: bool) -> dict[str, Any]:
        return await refusals(self.storage.listing.remote(account.name, path, recursive))

    async def delete_files(self, account: Account, path: str, **selection: Any) -> dict[str, Any]:
        return await refusals(self.storage.delete.remote(account.name, path, **selection))

    async def store_upload(self, account: Account, path: Path, extension: str, content_type: str) -> str:
        """A client's file, written to this node's disk, into its persistent storage under
        a fresh key: its URL is an input like any other (the fetcher reads the service's
        own URLs from storage). The bytes go from this node's disk to the backend."""
        try:
            return await self.storage.store.remote(
                account.name, new_key(), "upload", {"type": "persistent"}, str(path), extension, content_type, True
            )
        except ray.exceptions.RayTaskError:
            raise UnavailableError("body", "the upload could not be stored") from None

    async def begin_upload(self, account: Account, extension: str, content_type: str) -> str:
        """An upload in parts (a file larger than one request should carry): its id."""
        return await refusals(self.storage.begin_upload.remote(account.name, extension, content_type))

    async def upload_part(self, account: Account, upload: str, number: int, path: Path) -> None:
        """Part ``number`` of an upload, from a file on this node."""
        return await refusals(self.storage.upload_part.remote(account.name, upload, number, str(path)))

    async def finish_upload(self, account: Account, upload: str) -> tuple[str, int]:
        """Join the parts: the file's URL (an input like any other) and size."""
        return await refusals(self.storage.finish_upload.remote(account.name, upload))

    async def abort_upload(self, account: Account, upload: str) -> None:
        await refusals(self.storage.abort_upload.remote(account.name, upload))

    async def expiration(self, account: Account, days: int | None = None) -> int:
        return await refusals(self.storage.expiration.remote(account.name, days))

    # internals

    async def _pipeline(
        self, account: Account, tasks: list[NewTask], refs: list[pipelines.Reference], keys: list[str]
    ) -> list[NewTask]:
        """The tasks with the uses their references name: earlier tasks must be the
        account's (another account's key is unknown here), named results must exist."""
        task_names = {t.record.key: t.record.task_name for t in tasks}
        earlier = list({r.task for r in refs if isinstance(r.task, str)})
        found = await self.shards.details(earlier) if earlier else {}
        for ref in refs:
            using = tasks[ref.index]
            if using.error is None and ref.parameter not in using.record.params:
                raise InvalidRequestError(ref.where, f"{using.record.task_name} has no parameter {ref.parameter!r}")
            if isinstance(ref.task, str):
                details = found.get(ref.task)
                if details is None or details.record.account != account.name:
                    raise UnknownTaskError(ref.task, ref.where)
                task_names[ref.task] = details.record.task_name
            pipelines.check_result(ref, task_names[keys[ref.task] if isinstance(ref.task, int) else ref.task])
        return [
            NewTask(
                replace(t.record, uses=pipelines.uses([r for r in refs if r.index == i], keys, task_names)), t.error
            )
            for i, t in enumerate(tasks)
        ]

    def _prepare(self, account: Account, key: str, index: int, definition: Any) -> NewTask:
        """The task of key ``key``, and its validation error (None when valid)."""
        where = f"tasks.{index}"
        if not isinstance(definition, dict):
            raise InvalidRequestError(where, "a task definition must be an object")
        task_name = definition.get("task_name")
        if not isinstance(task_name, str) or not task_name:
            raise InvalidRequestError(f"{where}.task_name", "task_name is missing")
        task_type = registry.get(task_name)
        if task_type is None:
            raise InvalidRequestError(
                f"{where}.task_name", f"{task_name!r} is not a task name; choose one of: {', '.join(registry.names())}"
            )
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
            key=key,
            account=account.name,
            task_name=task_name,
            params=params,
            task_store=store if isinstance(store, dict) else {"type": "persistent"},
            extra=extra,
        )
        return NewTask(record, error)


def check_sxml(definition: str, lengths: dict[str, float]) -> SxmlCheck:
    unknown: list[str] = []

    def length(node: Node) -> float | None:
        source = node.attrs.get("filename", "").strip() or node.text
        if source in lengths:
            return lengths[source]
        unknown.append(source)
        return None

    try:
        document = sxml.parse(definition)
        duration = sxml.resolve(document.movie, length)
    except InvalidXMLError as exc:
        text = str(exc).removeprefix("InvalidXMLError: ")
        line, _, message = text.partition(": ")
        number = line.removeprefix("line ")
        if not number.isdigit():
            number, message = "1", text
        return SxmlCheck(valid=False, errors=[{"line": int(number), "message": message}])
    return SxmlCheck(
        valid=True,
        duration=round(duration, 3),
        annotated=sxml.annotate(document.movie),
        timing=[
            {"line": n.line, "tag": n.tag, "start": round(n.start, 3), "duration": round(n.duration, 3)}
            for n in _timed(document.movie)
        ],
        warnings=document.warnings,
        unknown_lengths=list(dict.fromkeys(unknown)),
    )


def _timed(node: Node) -> Iterator[Node]:
    if node.tag in TIMED:
        yield node
    for child in node.children:
        yield from _timed(child)


def _utc(moment: datetime | None) -> str | None:
    """As the journal writes creation times (dragon.status.now_iso), so they compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def _cursor(created_at: str, key: str) -> str:
    """Where a page ended, opaque to clients (its form may change)."""
    return base64.urlsafe_b64encode(json.dumps([created_at, key]).encode()).decode().rstrip("=")


def _position(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        created_at, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        datetime.fromisoformat(created_at)
    except (ValueError, TypeError, binascii.Error):
        created_at, key = "", None
    if not is_key(key):
        raise InvalidRequestError("cursor", "this is not a cursor of a previous page")
    return created_at, key


def _known(keys: list[str], found: list[Any]) -> list[dict[str, Any]]:
    for key, item in zip(keys, found):
        if item is None:
            raise UnknownTaskError(key)
    return [item[1] for item in found]
