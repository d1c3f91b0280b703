"""Routes of the Tasks API v2 and their Ray Serve deployment.

Handlers parse with the shapes of dragon/protocol.py, authenticate (dragon/serve/auth.py)
and call :class:`dragon.service.Service`; refusals become the spec's error bodies in one
place (dragon/serve/errors.py). Every long wait (``block``, streams) is an async long
poll on a shard, so a replica holds thousands of them without starving quick routes;
replicas count them so that autoscaling can leave them out (dragon/serve/scaling.py).
"""

import asyncio
import contextlib
import json
import logging
import mimetypes
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from ray import exceptions as rex
from ray import serve
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from dragon.accounts import Account
from dragon.config import Settings
from dragon.protocol import (
    BatchRequest,
    CreateRequest,
    DeleteFilesRequest,
    ExpirationRequest,
    HistoryQuery,
    KeysRequest,
    ListFilesQuery,
    StatusRequest,
    SxmlCheckRequest,
)
from dragon.serve.auth import Authenticator
from dragon.serve.cors import CorsMiddleware, Origins
from dragon.serve.errors import RequestError, error_response
from dragon.serve.errors import install as install_error_handlers
from dragon.serve.files import OpenFileResponse, open_regular_file
from dragon.serve.openapi import HISTORY, LINES, STATUSES, SXML_CHECK, body_of, document, query_of
from dragon.serve.requests import body_as, json_body, query_as
from dragon.serve.scaling import LongPolls
from dragon.service import Service
from dragon.storage import open_backend
from dragon.storage.local import LocalBackend
from dragon.storage.paths import AREAS, client_path

log = logging.getLogger(__name__)

STREAM_MEDIA_TYPE = "application/x-json-stream"
UI = Path(__file__).parent / "ui"
UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
V1 = {
    "/v1/create": "/v2/create",
    "/v1/status": "/v2/status",
    "/v1/create_stream": "/v2/create_stream",
    "/v1/stream": "/v2/stream",
    "/v1/status_stream": "/v2/status_stream",
}


class Compatibility:
    """Paths as the original's clients build them: repeated slashes collapse (a base URL
    ending in "/" joined with "/v2/create"), and the v1 routes answer as v2 does, with an
    error's details also in ``result``, where v1 clients read them (docs/api.md)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = re.sub(r"/{2,}", "/", scope["path"])
            if path in V1:
                scope.setdefault("state", {})["v1"] = True
                path = V1[path]
            scope["path"] = path
        await self.app(scope, receive, send)


def _origins() -> Origins | None:
    replica = serve.get_replica_context().servable_object
    return getattr(replica, "origins", None)


app = FastAPI(title="Dragon Tasks API", version="2", description="The Stupeflix Tasks API v2, on Ray.")
app.openapi = lambda: document(app)  # type: ignore[method-assign]
app.add_middleware(CorsMiddleware, origins=_origins)
app.add_middleware(Compatibility)
install_error_handlers(app)


def _lines(
    first: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]], polls: LongPolls, request: Request
) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield json.dumps(_versioned(request, first)) + "\n"
        async for doc in rest:
            yield json.dumps(_versioned(request, [doc])[0]) + "\n"

    return StreamingResponse(polls.stream(body()), media_type=STREAM_MEDIA_TYPE)


def _versioned(request: Request, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """v1 statuses carry an error's details in ``result`` too."""
    if request.scope.get("state", {}).get("v1"):
        for doc in docs:
            if doc.get("status") == "error":
                doc["result"] = doc.get("error")
    return docs


def _file_type(request: Request) -> tuple[str, str]:
    """The extension and content type of an uploaded file, from its ``filename``."""
    name = request.query_params.get("filename") or "upload"
    extension = "".join(c for c in Path(name).suffix.lstrip(".").lower() if c.isalnum())[:16]
    return extension, mimetypes.guess_type(name)[0] or "application/octet-stream"


class _QuietHealth(logging.Filter):
    """Load balancers poll /health every few seconds: their access log lines are noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return " /health " not in record.getMessage()


# Module functions the routes use are defined above the class: serve.ingress takes a
# copy of the routes (and of the globals they name) when it decorates the class.
@serve.deployment(max_ongoing_requests=10_000, graceful_shutdown_timeout_s=5)
@serve.ingress(app)
class Api:
    def __init__(self, settings: Settings):
        self.service = Service.lookup(settings.ray_namespace)
        self.settings = settings = self.service.settings
        self.authenticator = Authenticator(self.service)
        self.origins = Origins(self.service.accounts, settings.cors_origins)
        self.backend = open_backend(settings)
        self.long_polls = LongPolls()
        for handler in logging.getLogger("ray.serve").handlers:
            handler.addFilter(_QuietHealth())

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook for custom metrics: the long polls held now (dragon/serve/scaling.py)."""
        return self.long_polls.stats()

    async def _body(self, request: Request) -> dict[str, Any]:
        return await json_body(request, self.settings.max_request_bytes)

    async def _account(self, request: Request, *, secret_only: bool = False, body: bool = True) -> Account:
        """The caller's account, from its credentials wherever they are (the JSON body
        unless ``body`` is False, the Authorization header, the query); kept in the
        request's state for the CORS answer."""
        fields = await self._body(request) if body and request.method not in ("GET", "HEAD") else {}
        account = await self.authenticator(request, fields, secret_only=secret_only)
        request.state.account = account
        return account

    @app.get("/ping", include_in_schema=False)
    async def ping(self) -> dict[str, str]:
        """Liveness of this replica alone (and the bare route of the API benchmark)."""
        return {"status": "ok"}

    @app.post("/ping", include_in_schema=False)
    async def ping_body(self, request: Request) -> dict[str, str]:
        """The bare route with a JSON body, read as every route reads it: Serve's replica
        fetches a body from its proxy in a round trip of its own (benchmarks/api.py)."""
        await self._body(request)
        return {"status": "ok"}

    @app.get("/health")
    async def health(self) -> JSONResponse:
        """200 once tasks can be created (every shard has queued again its unfinished tasks)."""
        try:
            state = await asyncio.wait_for(self.service.ready(), timeout=10)
        except (TimeoutError, rex.RayError):
            return error_response(503, "service", "body", "the service is starting or unavailable")
        return JSONResponse({"status": "ok", **state})

    # tasks

    @app.post("/v2/create", openapi_extra={**body_of(CreateRequest), **STATUSES})
    async def create(self, request: Request) -> list[dict[str, Any]]:
        account = await self._account(request)
        shape = body_as(CreateRequest, await self._body(request))
        with self.long_polls.held(shape.block):
            docs = await self.service.create(
                account,
                shape.tasks,
                block=shape.block,
                idempotency_key=request.headers.get("idempotency-key", shape.idempotency_key),
            )
        return _versioned(request, docs)

    @app.post("/v2/create_stream", openapi_extra={**body_of(CreateRequest), **LINES})
    async def create_stream(self, request: Request) -> StreamingResponse:
        account = await self._account(request)
        shape = body_as(CreateRequest, await self._body(request))
        docs = await self.service.create(
            account, shape.tasks, idempotency_key=request.headers.get("idempotency-key", shape.idempotency_key)
        )
        return _lines(*await self.service.open_stream([doc["key"] for doc in docs]), self.long_polls, request)

    @app.post("/v2/batch", openapi_extra=body_of(BatchRequest))
    async def batch(self, request: Request) -> dict[str, Any]:
        """One task type over a manifest's rows (not in the v2 spec); the status of the
        ``batch`` task it creates."""
        account = await self._account(request)
        shape = body_as(BatchRequest, await self._body(request))
        [status] = await self.service.create(
            account, [shape.definition()], idempotency_key=request.headers.get("idempotency-key", shape.idempotency_key)
        )
        return status

    @app.post("/v2/cancel", openapi_extra=body_of(KeysRequest))
    async def cancel(self, request: Request) -> dict[str, Any]:
        """Cancel queued and executing tasks of the caller's account (not in the v2 spec)."""
        account = await self._account(request)
        return await self.service.cancel(account, body_as(KeysRequest, await self._body(request)).tasks)

    @app.get("/v2/status", openapi_extra={**query_of(StatusRequest), **STATUSES})
    async def status_get(self, request: Request) -> list[dict[str, Any]]:
        return await self._status(request, query_as(StatusRequest, request))

    @app.post("/v2/status", openapi_extra={**body_of(StatusRequest), **STATUSES})
    async def status_post(self, request: Request) -> list[dict[str, Any]]:
        return await self._status(request, body_as(StatusRequest, await self._body(request)))

    async def _status(self, request: Request, shape: StatusRequest) -> list[dict[str, Any]]:
        with self.long_polls.held(shape.block):
            return _versioned(request, await self.service.status(shape.tasks, block=shape.block, details=shape.details))

    @app.get("/v2/tasks", openapi_extra={**query_of(HistoryQuery), **HISTORY})
    async def history(self, request: Request) -> dict[str, Any]:
        """The caller's tasks, newest first, a page at a time (not in the v2 spec)."""
        account = await self._account(request)
        return await self.service.history(account, query_as(HistoryQuery, request))

    @app.get("/v2/usage")
    async def usage(self, request: Request) -> dict[str, int]:
        """The caller's tasks running and queued now (not in the v2 spec)."""
        return await self.service.usage(await self._account(request))

    @app.post("/v2/sxml/check", openapi_extra={**body_of(SxmlCheckRequest), **SXML_CHECK})
    async def sxml_check(self, request: Request) -> dict[str, Any]:
        """A video.create definition checked and timed, nothing rendered (not in the v2 spec)."""
        await self._account(request)
        shape = body_as(SxmlCheckRequest, await self._body(request))
        return await self.service.check_sxml(shape.definition, shape.lengths)

    @app.get("/v2/status_stream", openapi_extra={**query_of(KeysRequest), **LINES})
    @app.get("/v2/stream", openapi_extra={**query_of(KeysRequest), **LINES})
    async def status_stream_get(self, request: Request) -> StreamingResponse:
        keys = query_as(KeysRequest, request).tasks
        return _lines(*await self.service.open_stream(keys), self.long_polls, request)

    @app.post("/v2/status_stream", openapi_extra={**body_of(KeysRequest), **LINES})
    @app.post("/v2/stream", openapi_extra={**body_of(KeysRequest), **LINES})
    async def status_stream_post(self, request: Request) -> StreamingResponse:
        keys = body_as(KeysRequest, await self._body(request)).tasks
        return _lines(*await self.service.open_stream(keys), self.long_polls, request)

    # the Storage API

    @app.get("/v2/storage/files", openapi_extra=query_of(ListFilesQuery))
    @app.get("/v2/storage/files/{path:path}", openapi_extra=query_of(ListFilesQuery))
    async def files_list(self, request: Request, path: str = "") -> dict[str, Any]:
        account = await self._account(request, secret_only=True)
        shape = query_as(ListFilesQuery, request)
        return await self.service.list_files(account, client_path(path), shape.recursive)

    @app.delete("/v2/storage/files", openapi_extra=body_of(DeleteFilesRequest))
    @app.delete("/v2/storage/files/{path:path}", openapi_extra=body_of(DeleteFilesRequest))
    async def files_delete(self, request: Request, path: str = "") -> dict[str, Any]:
        account = await self._account(request, secret_only=True)
        shape = body_as(DeleteFilesRequest, await self._body(request))
        return await self.service.delete_files(
            account,
            client_path(path),
            urls=shape.urls,
            dry_run=shape.dry_run,
            start=shape.from_,
            end=shape.to,
            max_age=shape.max_age,
        )

    @app.get("/v2/storage/expiration")
    async def expiration_get(self, request: Request) -> int:
        account = await self._account(request, secret_only=True)
        return await self.service.expiration(account)

    @app.post("/v2/storage/expiration", openapi_extra=body_of(ExpirationRequest))
    async def expiration_set(self, request: Request) -> int:
        account = await self._account(request, secret_only=True)
        return await self.service.expiration(account, body_as(ExpirationRequest, await self._body(request)).days)

    @app.post("/v2/storage/upload")
    async def upload(self, request: Request) -> dict[str, Any]:
        """A local file as a task input (not in the v2 spec): the raw body goes to the
        caller's persistent storage; the answer's ``url`` works as any task's input.
        Credentials come in the Authorization header or the query (the body is the file).
        Files over ``max_upload_request_bytes`` go in parts (``/v2/storage/uploads``)."""
        account = await self._account(request, secret_only=True, body=False)
        extension, content_type = _file_type(request)
        limit = self.settings.max_upload_request_bytes
        async with self._received(request, limit, "send larger files in parts (POST /v2/storage/uploads)") as (
            path,
            size,
        ):
            url = await self.service.store_upload(account, path, extension, content_type)
        return {"url": url, "size": size, "content_type": content_type}

    @app.post("/v2/storage/uploads")
    async def upload_begin(self, request: Request) -> dict[str, Any]:
        """Begin an upload in parts (not in the v2 spec), for files of any size up to
        ``max_upload_bytes``: PUT each part (``part_bytes`` long but the last) to
        ``/v2/storage/uploads/{upload}/{number}``, then POST ``/v2/storage/uploads/{upload}``.
        A part sent again replaces the first: an interrupted upload resumes."""
        account = await self._account(request, secret_only=True, body=False)
        extension, content_type = _file_type(request)
        upload = await self.service.begin_upload(account, extension, content_type)
        return {
            "upload": upload,
            "part_bytes": self.settings.upload_part_bytes,
            "content_type": content_type,
            "max_parts": -(-self.settings.max_upload_bytes // self.settings.upload_part_bytes),
        }

    @app.put("/v2/storage/uploads/{upload}/{number}")
    async def upload_part(self, request: Request, upload: str, number: int) -> dict[str, Any]:
        account = await self._account(request, secret_only=True, body=False)
        if not 1 <= number <= -(-self.settings.max_upload_bytes // self.settings.upload_part_bytes):
            raise RequestError("number", "a part's number goes from 1 to the upload's max_parts", "path")
        async with self._received(request, self.settings.upload_part_bytes, "a part is part_bytes long at most") as (
            path,
            size,
        ):
            await self.service.upload_part(account, upload, number, path)
        return {"part": number, "size": size}

    @app.post("/v2/storage/uploads/{upload}")
    async def upload_finish(self, request: Request, upload: str) -> dict[str, Any]:
        account = await self._account(request, secret_only=True, body=False)
        url, size = await self.service.finish_upload(account, upload)
        content_type = mimetypes.guess_type(url.split("?", 1)[0])[0] or "application/octet-stream"
        return {"url": url, "size": size, "content_type": content_type}

    @app.delete("/v2/storage/uploads/{upload}")
    async def upload_abort(self, request: Request, upload: str) -> dict[str, Any]:
        account = await self._account(request, secret_only=True, body=False)
        await self.service.abort_upload(account, upload)
        return {"aborted": upload}

    @contextlib.asynccontextmanager
    async def _received(self, request: Request, limit: int, hint: str) -> AsyncIterator[tuple[Path, int]]:
        """The request's body in a file of this node's scratch (removed after), and its size."""
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.settings.scratch_dir, prefix="upload-") as tmp:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError("body", f"the file is larger than {limit} bytes: {hint}", "body", 413)
                tmp.write(chunk)
            tmp.flush()
            if not size:
                raise RequestError("body", "the file is empty")
            yield Path(tmp.name), size

    # the dashboard: static files, no build step

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/{name}", include_in_schema=False)
    async def dashboard(self, name: str = "index.html") -> FileResponse:
        if name not in UI_FILES:
            raise HTTPException(404, "Not Found")
        return FileResponse(UI / name, media_type=UI_FILES[name], headers={"Cache-Control": "no-cache"})

    # output files of the embedded (local disk) storage

    @app.get("/storage/{name:path}")
    @app.head("/storage/{name:path}", include_in_schema=False)
    async def stored_file(self, name: str) -> OpenFileResponse:
        """Output files, with Range support so players can seek, and HEAD for the tools
        that ask a file's size and type first. Names are 128-bit task keys plus a random
        suffix: the URL is the capability, as with public S3 URLs."""
        if not isinstance(self.backend, LocalBackend) or name.split("/", 1)[0] not in AREAS:
            raise HTTPException(404, "Not Found")
        try:
            path = self.backend.path(name)
        except FileNotFoundError:
            raise HTTPException(404, "Not Found") from None
        file = open_regular_file(path)
        if file is None:
            raise HTTPException(404, "Not Found")
        return OpenFileResponse(file, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def build(settings: Settings) -> serve.Application:
    return Api.options(  # type: ignore[attr-defined]  # added by @serve.deployment
        num_replicas=settings.api_replicas,
        ray_actor_options={"num_cpus": settings.api_replica_cpus},
    ).bind(settings)
