"""Routes of the Tasks API v2 and their Ray Serve deployment.

Handlers only parse, authenticate and call :class:`dragon.service.Service`; every
long wait (``block``, streams) is an async long poll on the status actor, so a replica
holds thousands of them without starving quick routes. Replicas count their long polls
so that autoscaling can leave them out (dragon/serve/scaling.py).
"""


import asyncio
import contextlib
import json
import logging
import mimetypes
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from ray import exceptions as rex
from ray import serve
from starlette.exceptions import HTTPException

from dragon.config import Settings
from dragon.errors import InvalidRequestError
from dragon.serve.auth import Authenticator
from dragon.serve.errors import RequestError, error_response
from dragon.serve.errors import install as install_error_handlers
from dragon.serve.openapi import document
from dragon.serve.requests import batch_definition, flag, json_body, moment, number, task_definitions, task_keys
from dragon.serve.scaling import LongPolls
from dragon.storage import open_backend
from dragon.storage.local import LocalBackend
from dragon.storage.paths import AREAS, client_path
from dragon.service import Service

log = logging.getLogger(__name__)

STREAM_MEDIA_TYPE = "application/x-json-stream"
MAX_EXPIRATION_DAYS = 36_500  # a century; larger dates overflow
UI = Path(__file__).parent / "ui"
UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

app = FastAPI(title="Dragon Tasks API", version="2", description="The Stupeflix Tasks API v2, on Ray.")
app.openapi = lambda: document(app)  # type: ignore[method-assign]


install_error_handlers(app)


def _lines(first: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]], polls: LongPolls) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield json.dumps(first) + "\n"
        async for doc in rest:
            yield json.dumps(doc) + "\n"

    return StreamingResponse(polls.stream(body()), media_type=STREAM_MEDIA_TYPE)


def _file_type(request: Request) -> tuple[str, str]:
    """The extension and content type of an uploaded file, from its ``filename``."""
    name = request.query_params.get("filename") or "upload"
    extension = "".join(c for c in Path(name).suffix.lstrip(".").lower() if c.isalnum())[:16]
    return extension, mimetypes.guess_type(name)[0] or "application/octet-stream"


# Module functions the routes use are defined above the class: serve.ingress takes a
# copy of the routes (and of the globals they name) when it decorates the class.
@serve.deployment(max_ongoing_requests=10_000, graceful_shutdown_timeout_s=5)
@serve.ingress(app)
class Api:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.service = Service.lookup(settings.ray_namespace)
        self.authenticate = Authenticator(self.service)
        self.backend = open_backend(settings)
        self.long_polls = LongPolls()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook for custom metrics: the long polls held now (dragon/serve/scaling.py)."""
        return self.long_polls.stats()

    @app.get("/ping", include_in_schema=False)
    async def ping(self) -> dict[str, str]:
        """Liveness of this replica alone (and the bare route of the API benchmark)."""
        return {"status": "ok"}

    @app.get("/health")
    async def health(self) -> JSONResponse:
        """200 once tasks can be created (every shard has queued again its unfinished tasks)."""
        try:
            state = await asyncio.wait_for(self.service.ready(), timeout=10)
        except (asyncio.TimeoutError, rex.RayError):
            return error_response(503, "service", "body", "the service is starting or unavailable")
        return JSONResponse({"status": "ok", **state})

    @app.post("/v2/create")
    async def create(self, request: Request) -> list[dict[str, Any]]:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        block = flag(body.get("block"), "block", "body")
        with self.long_polls.held(block):
            return await self.service.create(
                account,
                task_definitions(body),
                block=block,
                idempotency_key=request.headers.get("idempotency-key", body.get("idempotency_key")),
            )

    @app.post("/v2/batch")
    async def batch(self, request: Request) -> dict[str, Any]:
        """One task type over a manifest's rows (not in the v2 spec): body ``task_name``,
        ``input`` (manifest URL), ``params``; the status of the ``batch`` task it creates."""
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        [status] = await self.service.create(
            account, [batch_definition(body)],
            idempotency_key=request.headers.get("idempotency-key", body.get("idempotency_key")),
        )
        return status

    @app.post("/v2/cancel")
    async def cancel(self, request: Request) -> dict[str, Any]:
        """Cancel queued and executing tasks of the caller's account (not in the v2 spec)."""
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        return await self.service.cancel(account, task_keys(body.get("tasks"), "body"))

    @app.post("/v2/create_stream")
    async def create_stream(self, request: Request) -> StreamingResponse:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        docs = await self.service.create(
            account, task_definitions(body), idempotency_key=request.headers.get("idempotency-key", body.get("idempotency_key"))
        )
        return _lines(*await self.service.open_stream([doc["key"] for doc in docs]), self.long_polls)

    @app.get("/v2/status")
    async def status_get(self, request: Request) -> list[dict[str, Any]]:
        q = request.query_params
        return await self._status(
            task_keys(q.getlist("tasks"), "querystring"),
            block=flag(q.get("block"), "block", "querystring"),
            details=flag(q.get("details"), "details", "querystring"),
        )

    @app.post("/v2/status")
    async def status_post(self, request: Request) -> list[dict[str, Any]]:
        body = await json_body(request, self.settings.max_request_bytes)
        return await self._status(
            task_keys(body.get("tasks"), "body"),
            block=flag(body.get("block"), "block", "body"),
            details=flag(body.get("details"), "details", "body"),
        )

    async def _status(self, keys: list[str], block: bool, details: bool) -> list[dict[str, Any]]:
        with self.long_polls.held(block):
            return await self.service.status(keys, block=block, details=details)

    @app.get("/v2/status_stream")
    @app.get("/v2/stream")
    async def status_stream_get(self, request: Request) -> StreamingResponse:
        keys = task_keys(request.query_params.getlist("tasks"), "querystring")
        return _lines(*await self.service.open_stream(keys), self.long_polls)

    @app.post("/v2/status_stream")
    @app.post("/v2/stream")
    async def status_stream_post(self, request: Request) -> StreamingResponse:
        body = await json_body(request, self.settings.max_request_bytes)
        return _lines(*await self.service.open_stream(task_keys(body.get("tasks"), "body")), self.long_polls)


    # the Storage API

    @app.get("/v2/storage/files")
    @app.get("/v2/storage/files/{path:path}")
    async def files_list(self, request: Request, path: str = "") -> dict[str, Any]:
        account = await self.authenticate(request, {}, secret_only=True)
        recursive = flag(request.query_params.get("recursive"), "recursive", "querystring")
        return await self.service.list_files(account, client_path(path), recursive)

    @app.delete("/v2/storage/files")
    @app.delete("/v2/storage/files/{path:path}")
    async def files_delete(self, request: Request, path: str = "") -> dict[str, Any]:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body, secret_only=True)
        urls = body.get("urls")
        if urls is not None and (not isinstance(urls, list) or not all(isinstance(u, str) for u in urls)):
            raise InvalidRequestError("urls", "urls must be a list of URLs")
        return await self.service.delete_files(
            account,
            client_path(path),
            urls=urls,
            dry_run=flag(body.get("dry_run"), "dry_run", "body"),
            start=moment(body.get("from"), "from"),
            end=moment(body.get("to"), "to"),
            max_age=number(body.get("max_age"), "max_age"),
        )

    @app.post("/v2/storage/upload")
    async def upload(self, request: Request) -> dict[str, Any]:
        """A local file as a task input (not in the v2 spec): the raw body goes to the
        caller's persistent storage; the answer's ``url`` works as any task's input.
        Credentials come in the Authorization header or the query (the body is the file).
        Files over ``max_upload_request_bytes`` go in parts (``/v2/storage/uploads``)."""
        account = await self.authenticate(request, {}, secret_only=True)
        extension, content_type = _file_type(request)
        limit = self.settings.max_upload_request_bytes
        async with self._received(request, limit, "send larger files in parts (POST /v2/storage/uploads)") as (path, size):
            url = await self.service.store_upload(account, path, extension, content_type)
        return {"url": url, "size": size, "content_type": content_type}

    @app.post("/v2/storage/uploads")
    async def upload_begin(self, request: Request) -> dict[str, Any]:
        """Begin an upload in parts (not in the v2 spec), for files of any size up to
        ``max_upload_bytes``: PUT each part (``part_bytes`` long but the last) to
        ``/v2/storage/uploads/{upload}/{number}``, then POST ``/v2/storage/uploads/{upload}``.
        A part sent again replaces the first: an interrupted upload resumes."""
        account = await self.authenticate(request, {}, secret_only=True)
        extension, content_type = _file_type(request)
        upload = await self.service.begin_upload(account, extension, content_type)
        return {"upload": upload, "part_bytes": self.settings.upload_part_bytes, "content_type": content_type,
                "max_parts": -(-self.settings.max_upload_bytes // self.settings.upload_part_bytes)}

    @app.put("/v2/storage/uploads/{upload}/{number}")
    async def upload_part(self, request: Request, upload: str, number: int) -> dict[str, Any]:
        account = await self.authenticate(request, {}, secret_only=True)
        if not 1 <= number <= -(-self.settings.max_upload_bytes // self.settings.upload_part_bytes):
            raise RequestError("number", "a part's number goes from 1 to the upload's max_parts", "path")
        async with self._received(request, self.settings.upload_part_bytes, "a part is part_bytes long at most") as (path, size):
            await self.service.upload_part(account, upload, number, path)
        return {"part": number, "size": size}

    @app.post("/v2/storage/uploads/{upload}")
    async def upload_finish(self, request: Request, upload: str) -> dict[str, Any]:
        account = await self.authenticate(request, {}, secret_only=True)
        url, size = await self.service.finish_upload(account, upload)
        content_type = mimetypes.guess_type(url.split("?", 1)[0])[0] or "application/octet-stream"
        return {"url": url, "size": size, "content_type": content_type}

    @app.delete("/v2/storage/uploads/{upload}")
    async def upload_abort(self, request: Request, upload: str) -> dict[str, Any]:
        account = await self.authenticate(request, {}, secret_only=True)
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

    @app.get("/v2/storage/expiration")
    async def expiration_get(self, request: Request) -> int:
        account = await self.authenticate(request, {}, secret_only=True)
        return await self.service.expiration(account)

    @app.post("/v2/storage/expiration")
    async def expiration_set(self, request: Request) -> int:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body, secret_only=True)
        days = body.get("days")
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_EXPIRATION_DAYS:
            raise InvalidRequestError("days", f"days must be an integer from 0 (never delete) to {MAX_EXPIRATION_DAYS}")
        return await self.service.expiration(account, days)

    # the dashboard: static files, no build step

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/{name}", include_in_schema=False)
    async def dashboard(self, name: str = "index.html") -> FileResponse:
        if name not in UI_FILES:
            raise HTTPException(404, "Not Found")
        return FileResponse(UI / name, media_type=UI_FILES[name], headers={"Cache-Control": "no-cache"})

    # output files of the embedded (local disk) storage

    @app.get("/storage/{name:path}")
    async def stored_file(self, name: str) -> FileResponse:
        """Output files, with Range support so players can seek. Names are 128-bit task
        keys plus a random suffix: the URL is the capability, as with public S3 URLs."""
        if not isinstance(self.backend, LocalBackend) or name.split("/", 1)[0] not in AREAS:
            raise HTTPException(404, "Not Found")
        try:
            path = self.backend.path(name)
        except FileNotFoundError:
            raise HTTPException(404, "Not Found") from None
        if not path.is_file():
            raise HTTPException(404, "Not Found")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def build(settings: Settings) -> serve.Application:
    return Api.options(
        num_replicas=settings.api_replicas,
        ray_actor_options={"num_cpus": settings.api_replica_cpus},
    ).bind(settings)
