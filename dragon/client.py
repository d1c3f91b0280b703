"""A Python client of the HTTP API, synchronous (:class:`Client`) and asynchronous
(:class:`AsyncClient`), on httpx::

    from dragon.client import Client
    with Client("http://127.0.0.1:8000", secret="...") as dragon:
        [task] = dragon.create({"task_name": "image.thumb", "url": dragon.upload("photo.jpg"), "width": 200})
        for status in dragon.stream([task.key]):
            print(status.key, status.status, status.progress)

Statuses are :class:`Status` models; API errors raise :class:`ApiError` (with the
API's ``errors`` list). Requests are retried on 503 and on connection failures with
back-off; ``create`` sends an ``Idempotency-Key`` so a retried create cannot run twice;
streams reconnect through ``status_stream`` after a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import httpx
from pydantic import BaseModel, ConfigDict

ENDED = ("success", "error")
RETRIES = 5


class Status(BaseModel):
    """A task's status as the API sends it."""

    model_config = ConfigDict(extra="allow")

    key: str
    status: str
    events: dict[str, str] = {}
    progress: Any = None
    result: Any = None
    error: Any = None
    details: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class ApiError(Exception):
    """The API refused a request: ``status_code`` and its ``errors``
    (``[{"name", "location", "description"}]``)."""

    def __init__(self, status_code: int, errors: list[dict[str, Any]]):
        self.status_code = status_code
        self.errors = errors
        text = "; ".join(f"{e.get('name')}: {e.get('description')}" for e in errors) or f"HTTP {status_code}"
        super().__init__(f"HTTP {status_code}: {text}")


def _error(response: httpx.Response) -> ApiError:
    try:
        errors = response.json().get("errors", [])
    except (ValueError, AttributeError):
        errors = []
    return ApiError(response.status_code, errors if isinstance(errors, list) else [])


def _keys(keys: str | Iterable[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def _tasks(tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tasks] if isinstance(tasks, dict) else list(tasks)


def _read(f: Any, size: int, on_progress: Callable[[int, int], None] | None) -> Iterator[bytes]:
    sent = 0
    while block := f.read(1 << 20):
        sent += len(block)
        if on_progress:
            on_progress(sent, size)
        yield block


def _pause(attempt: int) -> float:
    return min(5.0, 0.2 * 2**attempt)


class _Shape:
    """What both clients share: credentials, request shapes, answers as models."""

    def __init__(self, secret: str | None, api_key: str | None, referer: str | None):
        if not secret and not api_key:
            raise ValueError("give a secret or an api key")
        self._auth = {"Authorization": f"secret {secret}" if secret else f"api-key {api_key}"}
        if referer:
            self._auth["Referer"] = referer

    @staticmethod
    def _statuses(response: httpx.Response) -> list[Status]:
        return [Status.model_validate(doc) for doc in response.json()]

    @staticmethod
    def _changes(lines: Iterable[str], seen: dict[str, Status]) -> Iterator[Status]:
        """New statuses of a stream: the first line's array, then one per line; what a
        reconnection repeats (same status as last seen) is skipped."""
        for line in lines:
            if not line.strip():
                continue
            data = json.loads(line)
            for doc in data if isinstance(data, list) else [data]:
                status = Status.model_validate(doc)
                if seen.get(status.key) != status:
                    seen[status.key] = status
                    yield status


class Client(_Shape):
    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, secret: str | None = None, api_key: str | None = None,
                 referer: str | None = None, timeout: float = 660.0):
        super().__init__(secret, api_key, referer)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=self._auth)
        self.files = _Files(self)
        self.expiration = _Expiration(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, retries: int = RETRIES, **kwargs: Any) -> httpx.Response:
        """One API call, retried on 503 and connection failures; other errors raise."""
        for attempt in range(retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                if attempt == retries:
                    raise
                time.sleep(_pause(attempt))
                continue
            if response.status_code == 503 and attempt < retries:
                time.sleep(_pause(attempt))
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise AssertionError("unreachable")

    def create(self, tasks: dict[str, Any] | Iterable[dict[str, Any]], block: bool = False) -> list[Status]:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return self._statuses(self.request("POST", "/v2/create", json={"tasks": _tasks(tasks), "block": block},
                                           headers=headers))

    def status(self, keys: str | Iterable[str], details: bool = False) -> list[Status]:
        return self._statuses(self.request("POST", "/v2/status", json={"tasks": _keys(keys), "details": details}))

    def wait(self, keys: str | Iterable[str]) -> list[Status]:
        """Final statuses, however long the tasks take (block=true, asked again as needed)."""
        while True:
            statuses = self._statuses(self.request("POST", "/v2/status", json={"tasks": _keys(keys), "block": True}))
            if all(s.ended for s in statuses):
                return statuses

    def stream(self, keys: str | Iterable[str]) -> Iterator[Status]:
        """Every status change of these tasks until all have ended."""
        keys, seen = _keys(keys), {}
        for attempt in range(RETRIES * 4):
            try:
                with self._http.stream("POST", "/v2/status_stream", json={"tasks": keys}) as response:
                    if response.status_code >= 400:
                        response.read()
                        if response.status_code != 503:
                            raise _error(response)
                    else:
                        yield from self._changes(response.iter_lines(), seen)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                pass
            if len(seen) == len(set(keys)) and all(s.ended for s in seen.values()):
                return
            time.sleep(_pause(min(attempt, 4)))
        raise ApiError(503, [{"name": "stream", "location": "body", "description": "the stream kept breaking off"}])

    def create_stream(self, tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> Iterator[Status]:
        created = self.create(tasks)
        yield from created
        yield from self.stream([s.key for s in created])

    def cancel(self, keys: str | Iterable[str]) -> dict[str, Any]:
        """``{"canceled": [keys], "already_ended": [keys], "statuses": [...]}``."""
        return self.request("POST", "/v2/cancel", json={"tasks": _keys(keys)}).json()

    def upload(self, path: str | Path, on_progress: Callable[[int, int], None] | None = None) -> str:
        """Puts a local file in the account's storage; returns a URL to use as a task input.
        ``on_progress(sent, size)`` follows the bytes sent."""
        path = Path(path)
        size = path.stat().st_size
        for attempt in range(RETRIES + 1):  # each attempt reads the file again from the start
            with path.open("rb") as f:
                try:
                    response = self.request("POST", "/v2/storage/upload", retries=0, params={"filename": path.name},
                                            content=_read(f, size, on_progress),
                                            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
                    return response.json()["url"]
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                    if attempt == RETRIES:
                        raise
                except ApiError as exc:
                    if exc.status_code != 503 or attempt == RETRIES:
                        raise
            time.sleep(_pause(attempt))
        raise AssertionError("unreachable")


class _Files:
    def __init__(self, client: Client):
        self._client = client

    def list(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        return self._client.request("GET", f"/v2/storage/files/{path}", params={"recursive": str(recursive).lower()}).json()

    def delete(self, path: str = "", **selection: Any) -> dict[str, Any]:
        """``urls=[...]``, ``dry_run``, ``from``/``to`` (ISO dates), ``max_age`` (days)."""
        return self._client.request("DELETE", f"/v2/storage/files/{path}", json=selection).json()


class _Expiration:
    def __init__(self, client: Client):
        self._client = client

    def get(self) -> int:
        return self._client.request("GET", "/v2/storage/expiration").json()

    def set(self, days: int) -> int:
        return self._client.request("POST", "/v2/storage/expiration", json={"days": days}).json()


class AsyncClient(_Shape):
    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, secret: str | None = None, api_key: str | None = None,
                 referer: str | None = None, timeout: float = 660.0):
        super().__init__(secret, api_key, referer)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=self._auth)
        self.files = _AsyncFiles(self)
        self.expiration = _AsyncExpiration(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, retries: int = RETRIES, **kwargs: Any) -> httpx.Response:
        for attempt in range(retries + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                if attempt == retries:
                    raise
                await asyncio.sleep(_pause(attempt))
                continue
            if response.status_code == 503 and attempt < retries:
                await asyncio.sleep(_pause(attempt))
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise AssertionError("unreachable")

    async def create(self, tasks: dict[str, Any] | Iterable[dict[str, Any]], block: bool = False) -> list[Status]:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return self._statuses(await self.request("POST", "/v2/create", json={"tasks": _tasks(tasks), "block": block},
                                                 headers=headers))

    async def status(self, keys: str | Iterable[str], details: bool = False) -> list[Status]:
        return self._statuses(await self.request("POST", "/v2/status", json={"tasks": _keys(keys), "details": details}))

    async def wait(self, keys: str | Iterable[str]) -> list[Status]:
        while True:
            statuses = self._statuses(await self.request("POST", "/v2/status", json={"tasks": _keys(keys), "block": True}))
            if all(s.ended for s in statuses):
                return statuses

    async def stream(self, keys: str | Iterable[str]) -> AsyncIterator[Status]:
        keys, seen = _keys(keys), {}
        for attempt in range(RETRIES * 4):
            try:
                async with self._http.stream("POST", "/v2/status_stream", json={"tasks": keys}) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code != 503:
                            raise _error(response)
                    else:
                        async for line in response.aiter_lines():
                            for status in self._changes([line], seen):
                                yield status
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                pass
            if len(seen) == len(set(keys)) and all(s.ended for s in seen.values()):
                return
            await asyncio.sleep(_pause(min(attempt, 4)))
        raise ApiError(503, [{"name": "stream", "location": "body", "description": "the stream kept breaking off"}])

    async def create_stream(self, tasks: dict[str, Any] | Iterable[dict[str, Any]]) -> AsyncIterator[Status]:
        created = await self.create(tasks)
        for status in created:
            yield status
        async for status in self.stream([s.key for s in created]):
            yield status

    async def cancel(self, keys: str | Iterable[str]) -> dict[str, Any]:
        return (await self.request("POST", "/v2/cancel", json={"tasks": _keys(keys)})).json()

    async def upload(self, path: str | Path) -> str:
        path = Path(path)

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    yield block

        response = await self.request("POST", "/v2/storage/upload", retries=0, params={"filename": path.name},
                                      content=chunks(), headers={"Content-Type": "application/octet-stream"})
        return response.json()["url"]


class _AsyncFiles:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def list(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        params = {"recursive": str(recursive).lower()}
        return (await self._client.request("GET", f"/v2/storage/files/{path}", params=params)).json()

    async def delete(self, path: str = "", **selection: Any) -> dict[str, Any]:
        return (await self._client.request("DELETE", f"/v2/storage/files/{path}", json=selection)).json()


class _AsyncExpiration:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def get(self) -> int:
        return (await self._client.request("GET", "/v2/storage/expiration")).json()

    async def set(self, days: int) -> int:
        return (await self._client.request("POST", "/v2/storage/expiration", json={"days": days})).json()
