"""A Python client of the HTTP API, synchronous (:class:`Client`) and asynchronous
(:class:`AsyncClient`), on httpx::

    from dragon.client import Client
    with Client() as dragon:                          # DRAGON_URL and DRAGON_SECRET by default
        [task] = dragon.create({"task_name": "image.thumb", "url": dragon.upload("photo.jpg"), "width": 200})
        for status in dragon.stream([task.key]):
            print(status.key, status.status, status.progress)

Statuses are :class:`Status` models. Refusals raise an :class:`ApiError` subclass by
kind (:class:`AuthError`, :class:`NotFoundError`, :class:`LimitError`,
:class:`UnavailableError`), with the API's ``errors``; ``wait(..., check=True)``
raises :class:`TaskFailedError` for a task that ended in error. Requests are retried on
429, 502, 503, 504 and dropped connections, ``retries`` times (``DRAGON_RETRIES``, 5),
honouring ``Retry-After``; each may take ``timeout`` seconds (``DRAGON_TIMEOUT``, 660); ``create`` sends
an ``Idempotency-Key`` so a retried create cannot run twice; streams reconnect through
``status_stream``; large files upload in parts, each part retried on its own.

Both clients share :class:`_Core`, which makes every decision that needs no I/O (what
to send, what an answer means, whether and when to retry); each only sends.

:func:`verify` checks a callback a receiver got (Standard Webhooks signatures, with the
account's ``whsec_`` signing secret) and returns its status.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dragon import webhooks
from dragon.protocol import (
    CreateRequest,
    DeleteFilesRequest,
    ExpirationRequest,
    HistoryPage,
    HistoryQuery,
    KeysRequest,
    Status,
    StatusRequest,
)
from dragon.retry_after import retry_after_seconds

__all__ = [
    "Client",
    "AsyncClient",
    "Status",
    "ApiError",
    "AuthError",
    "NotFoundError",
    "LimitError",
    "UnavailableError",
    "TaskFailedError",
    "verify",
    "WebhookVerificationError",
]

RETRIED = (429, 502, 503, 504)
DROPPED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
SINGLE_UPLOAD = 32 * 1024 * 1024  # bytes a file may have to go in one request; larger go in parts
TIMEOUT = 660.0  # seconds per request (DRAGON_TIMEOUT): above the service's longest block=true wait
RETRIES = 5  # tries after the first (DRAGON_RETRIES)
MAX_RETRY_AFTER = 60.0  # the longest Retry-After the client waits before trying again


class ApiError(Exception):
    """The API refused a request: ``status_code`` and its ``errors``
    (``[{"name", "location", "description"}]``)."""

    def __init__(self, status_code: int, errors: list[dict[str, Any]]):
        self.status_code = status_code
        self.errors = errors
        text = "; ".join(f"{e.get('name')}: {e.get('description')}" for e in errors) or f"HTTP {status_code}"
        super().__init__(f"HTTP {status_code}: {text}")


class AuthError(ApiError):
    """401: the credentials are missing or refused."""


class LimitError(ApiError):
    """401 "account limits reached", or 429: too many tasks or requests for now."""


class NotFoundError(ApiError):
    """404, or 400 naming a task key that does not exist."""


class UnavailableError(ApiError):
    """503 (or 502, 504) after every retry: the service is down for now."""


class TaskFailedError(Exception):
    """A task the caller waited for ended in error (``wait(..., check=True)``)."""

    def __init__(self, status: Status):
        self.status = status
        super().__init__(f"task {status.key} failed: {status.error}")


WebhookVerificationError = webhooks.WebhookVerificationError


def verify(webhook_secret: str, headers: Any, body: bytes | str, tolerance: float = webhooks.TOLERANCE) -> Status:
    """The status a callback carries, once its ``webhook-signature`` checks out against
    the account's signing secret (``whsec_...``) and its ``webhook-timestamp`` is within
    ``tolerance`` seconds of now; else :class:`WebhookVerificationError`. ``headers`` is
    any mapping (a framework's request headers); ``body`` the raw bytes received."""
    return Status.model_validate(webhooks.verify(webhook_secret, dict(headers.items()), body, tolerance))


@dataclass(frozen=True)
class Call:
    """One HTTP request to make."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


class _Core:
    """Everything both clients decide without I/O."""

    def __init__(
        self,
        base_url: str | None,
        secret: str | None,
        api_key: str | None,
        referer: str | None,
        timeout: float | None,
        retries: int | None,
        backoff: float,
    ):
        self.base_url = base_url or os.environ.get("DRAGON_URL", "http://127.0.0.1:8000")
        self.timeout = timeout if timeout is not None else float(os.environ.get("DRAGON_TIMEOUT", TIMEOUT))
        self.retries = retries if retries is not None else int(os.environ.get("DRAGON_RETRIES", RETRIES))
        if not secret and not api_key:  # as the CLI: the arguments, else DRAGON_SECRET, else DRAGON_API_KEY
            secret = os.environ.get("DRAGON_SECRET")
            api_key = None if secret else os.environ.get("DRAGON_API_KEY")
        if not secret and not api_key:
            raise ValueError("give a secret or an api key (or set DRAGON_SECRET or DRAGON_API_KEY)")
        self.headers = {"Authorization": f"Secret {secret}" if secret else f"Api-Key {api_key}"}
        if referer:
            self.headers["Referer"] = referer
        self.backoff = backoff

    # requests

    @staticmethod
    def create(tasks: dict[str, Any] | Iterable[dict[str, Any]], block: bool) -> Call:
        body = CreateRequest.model_construct(tasks=_tasks(tasks), block=block).body()
        return Call("POST", "/v2/create", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})

    @staticmethod
    def status(keys: str | Iterable[str], *, block: bool = False, details: bool = False) -> Call:
        return Call(
            "POST",
            "/v2/status",
            json=StatusRequest.model_construct(tasks=_keys(keys), block=block, details=details).body(),
        )

    @staticmethod
    def cancel(keys: str | Iterable[str]) -> Call:
        return Call("POST", "/v2/cancel", json=KeysRequest.model_construct(tasks=_keys(keys)).body())

    @staticmethod
    def history(
        status: str | Iterable[str] | None, task_name: str | None, since: Moment, until: Moment, page_size: int
    ) -> HistoryQuery:
        """The first page's query; a time is a datetime, an ISO 8601 date, or a timedelta (that long ago)."""
        values: dict[str, Any] = {
            "status": _keys(status) if status else None,
            "task_name": task_name,
            "from_": _moment(since),
            "to": _moment(until),
            "limit": page_size,
        }
        return HistoryQuery.model_construct(**{k: v for k, v in values.items() if v is not None})

    @staticmethod
    def page(query: HistoryQuery) -> Call:
        return Call("GET", "/v2/tasks", params=query.params())

    @staticmethod
    def next_page(query: HistoryQuery, response: httpx.Response) -> tuple[list[Status], HistoryQuery | None]:
        """A page's statuses, and the query of the page after it (None after the last)."""
        page = HistoryPage.model_validate(response.json())
        return page.tasks, query.model_copy(update={"cursor": page.cursor}) if page.cursor else None

    @staticmethod
    def list_files(path: str, recursive: bool) -> Call:
        return Call("GET", f"/v2/storage/files/{path}", params={"recursive": str(recursive).lower()})

    @staticmethod
    def delete_files(path: str, selection: dict[str, Any]) -> Call:
        return Call("DELETE", f"/v2/storage/files/{path}", json=DeleteFilesRequest.model_construct(**selection).body())

    @staticmethod
    def expiration(days: int | None = None) -> Call:
        if days is None:
            return Call("GET", "/v2/storage/expiration")
        return Call("POST", "/v2/storage/expiration", json=ExpirationRequest.model_construct(days=days).body())

    # answers

    @staticmethod
    def statuses(response: httpx.Response) -> list[Status]:
        return [Status.model_validate(doc) for doc in response.json()]

    @staticmethod
    def error(response: httpx.Response) -> ApiError:
        try:
            errors = response.json().get("errors", [])
        except (ValueError, AttributeError):
            errors = []
        errors = errors if isinstance(errors, list) else []
        code = response.status_code
        words = " ".join(str(e.get("description", "")) for e in errors)
        kind: type[ApiError] = ApiError
        if code == 429 or (code == 401 and "limits" in words):
            kind = LimitError
        elif code == 401:
            kind = AuthError
        elif code == 404 or (code == 400 and "no task with this ID" in words):
            kind = NotFoundError
        elif code in RETRIED:
            kind = UnavailableError
        return kind(code, errors)

    @staticmethod
    def check(statuses: list[Status]) -> list[Status]:
        for status in statuses:
            if status.status == "error":
                raise TaskFailedError(status)
        return statuses

    # retries

    def pause(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying again (``Retry-After`` when the answer says), or
        None when this failure is final."""
        if attempt >= self.retries:
            return None
        if response is not None:
            if response.status_code not in RETRIED:
                return None
            after = retry_after_seconds(response.headers.get("retry-after"), time.time())
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        return min(5.0, self.backoff * 2**attempt)


class _Stream:
    """A stream of status changes that survives reconnections: statuses a reconnection
    repeats are skipped, and it ends once every task has ended."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.seen: dict[str, Status] = {}

    def call(self) -> Call:
        return Call("POST", "/v2/status_stream", json=KeysRequest.model_construct(tasks=self.keys).body())

    def feed(self, line: str) -> list[Status]:
        if not line.strip():
            return []
        data = json.loads(line)
        changes = []
        for doc in data if isinstance(data, list) else [data]:
            status = Status.model_validate(doc)
            if self.seen.get(status.key) != status:
                self.seen[status.key] = status
                changes.append(status)
        return changes

    @property
    def done(self) -> bool:
        return len(self.seen) == len(set(self.keys)) and all(s.ended for s in self.seen.values())


@dataclass(frozen=True)
class _Upload:
    """A local file's upload: one request for a small file, else parts (resumable: a
    failed part is sent again alone)."""

    path: Path
    size: int

    @property
    def in_parts(self) -> bool:
        return self.size > SINGLE_UPLOAD

    def single(self) -> Call:
        return Call(
            "POST",
            "/v2/storage/upload",
            params={"filename": self.path.name},
            headers={"Content-Type": "application/octet-stream"},
            content=self.path.read_bytes(),
        )

    def begin(self) -> Call:
        return Call("POST", "/v2/storage/uploads", params={"filename": self.path.name})

    def parts(self, upload: str, part_bytes: int) -> Iterator[tuple[Call, int]]:
        """Each part's request and the bytes sent once it is in."""
        with self.path.open("rb") as f:
            number = 0
            while chunk := f.read(part_bytes):
                number += 1
                yield (
                    Call(
                        "PUT",
                        f"/v2/storage/uploads/{upload}/{number}",
                        content=chunk,
                        headers={"Content-Type": "application/octet-stream"},
                    ),
                    min(number * part_bytes, self.size),
                )

    @staticmethod
    def finish(upload: str) -> Call:
        return Call("POST", f"/v2/storage/uploads/{upload}")


Moment = datetime | timedelta | str | None


def _moment(moment: Moment) -> datetime | str | None:
    return datetime.now(UTC) - moment if isinstance(moment, timedelta) else moment


def _keys(keys: str | Iterable[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def _tasks(tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tasks] if isinstance(tasks, dict) else list(tasks)


def _kwargs(call: Call) -> dict[str, Any]:
    return {"json": call.json, "params": call.params, "headers": call.headers, "content": call.content}


class Client:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        secret: str | None = None,
        api_key: str | None = None,
        referer: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float = 0.2,
    ):
        self._core = _Core(base_url, secret, api_key, referer, timeout, retries, backoff)
        self._http = httpx.Client(base_url=self._core.base_url, timeout=self._core.timeout, headers=self._core.headers)
        self.files = _Files(self)
        self.expiration = _Expiration(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call) -> httpx.Response:
        """One API call, retried as the core says; a refusal raises its ApiError."""
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **_kwargs(call))
            except DROPPED:
                pause = self._core.pause(attempt, None)
                if pause is None:
                    raise
            else:
                if response.status_code < 400:
                    return response
                pause = self._core.pause(attempt, response)
                if pause is None:
                    raise self._core.error(response)
            time.sleep(pause)
            attempt += 1

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.send(Call(method, path, **kwargs))

    def create(self, tasks: dict[str, Any] | Iterable[dict[str, Any]], block: bool = False) -> list[Status]:
        return self._core.statuses(self.send(self._core.create(tasks, block)))

    def status(self, keys: str | Iterable[str], details: bool = False) -> list[Status]:
        return self._core.statuses(self.send(self._core.status(keys, details=details)))

    def wait(self, keys: str | Iterable[str], *, check: bool = False) -> list[Status]:
        """Final statuses, however long the tasks take (block=true, asked again as needed);
        with ``check``, a task that ended in error raises TaskFailedError."""
        while True:
            statuses = self._core.statuses(self.send(self._core.status(keys, block=True)))
            if all(s.ended for s in statuses):
                return self._core.check(statuses) if check else statuses

    def stream(self, keys: str | Iterable[str]) -> Iterator[Status]:
        """Every status change of these tasks until all have ended."""
        stream, attempt = _Stream(_keys(keys)), 0
        while True:
            try:
                with self._http.stream("POST", stream.call().path, json=stream.call().json) as response:
                    if response.status_code >= 400:
                        response.read()
                        if self._core.pause(0, response) is None:
                            raise self._core.error(response)
                    else:
                        for line in response.iter_lines():
                            yield from stream.feed(line)
            except DROPPED:
                pass
            if stream.done:
                return
            pause = self._core.pause(min(attempt, 4), None)
            if pause is None or attempt > 4 * self._core.retries:
                raise UnavailableError(
                    503, [{"name": "stream", "location": "body", "description": "the stream kept breaking off"}]
                )
            time.sleep(pause)
            attempt += 1

    def create_stream(self, tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> Iterator[Status]:
        created = self.create(tasks)
        yield from created
        yield from self.stream([s.key for s in created])

    def tasks(
        self,
        *,
        status: str | Iterable[str] | None = None,
        task_name: str | None = None,
        since: Moment = None,
        until: Moment = None,
        page_size: int = 100,
    ) -> Iterator[Status]:
        """The account's tasks, newest first, filtered by state(s), type and creation time
        (``since=timedelta(hours=1)``); pages are fetched as the iteration needs them."""
        query: HistoryQuery | None = self._core.history(status, task_name, since, until, page_size)
        while query is not None:
            statuses, query = self._core.next_page(query, self.send(self._core.page(query)))
            yield from statuses

    def cancel(self, keys: str | Iterable[str]) -> dict[str, Any]:
        """``{"canceled": [keys], "already_ended": [keys], "statuses": [...]}``."""
        return self.send(self._core.cancel(keys)).json()

    def upload(self, path: str | Path, on_progress: Callable[[int, int], None] | None = None) -> str:
        """Puts a local file in the account's storage; returns a URL to use as a task input.
        ``on_progress(sent, size)`` follows the bytes sent."""
        upload = _Upload(Path(path), Path(path).stat().st_size)
        if not upload.in_parts:
            url = self.send(upload.single()).json()["url"]
            if on_progress:
                on_progress(upload.size, upload.size)
            return url
        begun = self.send(upload.begin()).json()
        for call, sent in upload.parts(begun["upload"], begun["part_bytes"]):
            self.send(call)
            if on_progress:
                on_progress(sent, upload.size)
        return self.send(upload.finish(begun["upload"])).json()["url"]


class _Files:
    def __init__(self, client: Client):
        self._client = client

    def list(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        return self._client.send(_Core.list_files(path, recursive)).json()

    def delete(self, path: str = "", **selection: Any) -> dict[str, Any]:
        """``urls=[...]``, ``dry_run``, ``from``/``to`` (ISO dates), ``max_age`` (days)."""
        return self._client.send(_Core.delete_files(path, selection)).json()


class _Expiration:
    def __init__(self, client: Client):
        self._client = client

    def get(self) -> int:
        return self._client.send(_Core.expiration()).json()

    def set(self, days: int) -> int:
        return self._client.send(_Core.expiration(days)).json()


class AsyncClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        secret: str | None = None,
        api_key: str | None = None,
        referer: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float = 0.2,
    ):
        self._core = _Core(base_url, secret, api_key, referer, timeout, retries, backoff)
        self._http = httpx.AsyncClient(
            base_url=self._core.base_url, timeout=self._core.timeout, headers=self._core.headers
        )
        self.files = _AsyncFiles(self)
        self.expiration = _AsyncExpiration(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, **_kwargs(call))
            except DROPPED:
                pause = self._core.pause(attempt, None)
                if pause is None:
                    raise
            else:
                if response.status_code < 400:
                    return response
                pause = self._core.pause(attempt, response)
                if pause is None:
                    raise self._core.error(response)
            await asyncio.sleep(pause)
            attempt += 1

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.send(Call(method, path, **kwargs))

    async def create(self, tasks: dict[str, Any] | Iterable[dict[str, Any]], block: bool = False) -> list[Status]:
        return self._core.statuses(await self.send(self._core.create(tasks, block)))

    async def status(self, keys: str | Iterable[str], details: bool = False) -> list[Status]:
        return self._core.statuses(await self.send(self._core.status(keys, details=details)))

    async def wait(self, keys: str | Iterable[str], *, check: bool = False) -> list[Status]:
        while True:
            statuses = self._core.statuses(await self.send(self._core.status(keys, block=True)))
            if all(s.ended for s in statuses):
                return self._core.check(statuses) if check else statuses

    async def stream(self, keys: str | Iterable[str]) -> AsyncIterator[Status]:
        stream, attempt = _Stream(_keys(keys)), 0
        while True:
            try:
                async with self._http.stream("POST", stream.call().path, json=stream.call().json) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if self._core.pause(0, response) is None:
                            raise self._core.error(response)
                    else:
                        async for line in response.aiter_lines():
                            for status in stream.feed(line):
                                yield status
            except DROPPED:
                pass
            if stream.done:
                return
            pause = self._core.pause(min(attempt, 4), None)
            if pause is None or attempt > 4 * self._core.retries:
                raise UnavailableError(
                    503, [{"name": "stream", "location": "body", "description": "the stream kept breaking off"}]
                )
            await asyncio.sleep(pause)
            attempt += 1

    async def create_stream(self, tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> AsyncIterator[Status]:
        created = await self.create(tasks)
        for status in created:
            yield status
        async for status in self.stream([s.key for s in created]):
            yield status

    async def tasks(
        self,
        *,
        status: str | Iterable[str] | None = None,
        task_name: str | None = None,
        since: Moment = None,
        until: Moment = None,
        page_size: int = 100,
    ) -> AsyncIterator[Status]:
        query: HistoryQuery | None = self._core.history(status, task_name, since, until, page_size)
        while query is not None:
            statuses, query = self._core.next_page(query, await self.send(self._core.page(query)))
            for found in statuses:
                yield found

    async def cancel(self, keys: str | Iterable[str]) -> dict[str, Any]:
        return (await self.send(self._core.cancel(keys))).json()

    async def upload(self, path: str | Path, on_progress: Callable[[int, int], None] | None = None) -> str:
        upload = _Upload(Path(path), Path(path).stat().st_size)
        if not upload.in_parts:
            url = (await self.send(upload.single())).json()["url"]
            if on_progress:
                on_progress(upload.size, upload.size)
            return url
        begun = (await self.send(upload.begin())).json()
        for call, sent in upload.parts(begun["upload"], begun["part_bytes"]):
            await self.send(call)
            if on_progress:
                on_progress(sent, upload.size)
        return (await self.send(upload.finish(begun["upload"]))).json()["url"]


class _AsyncFiles:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def list(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        return (await self._client.send(_Core.list_files(path, recursive))).json()

    async def delete(self, path: str = "", **selection: Any) -> dict[str, Any]:
        return (await self._client.send(_Core.delete_files(path, selection))).json()


class _AsyncExpiration:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def get(self) -> int:
        return (await self._client.send(_Core.expiration())).json()

    async def set(self, days: int) -> int:
        return (await self._client.send(_Core.expiration(days))).json()
