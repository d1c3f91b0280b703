"""Routes of the Tasks API v2 and their Ray Serve deployment.

Handlers only parse, authenticate and call :class:`dragon.service.Service`; every
long wait (``block``, streams) is an async long poll on the status actor, so a replica
holds thousands of them without starving quick routes.
"""


import asyncio
import json
import logging
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import exceptions as rex
from ray import serve
from starlette.exceptions import HTTPException

from dragon.config import Settings
from dragon.errors import AccountLimitError, RequestError
from dragon.serve.auth import Authenticator
from dragon.serve.requests import flag, json_body, task_definitions, task_keys
from dragon.service import Service

log = logging.getLogger(__name__)

STREAM_MEDIA_TYPE = "application/x-json-stream"

app = FastAPI(title="Dragon Tasks API", version="2", description="The Stupeflix Tasks API v2, on Ray.")


def _errors(status: int, name: str, location: str, description: str) -> JSONResponse:
    body = {"status": "error", "errors": [{"name": name, "location": location, "description": description}]}
    return JSONResponse(body, status_code=status)


@app.exception_handler(RequestError)
async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
    return _errors(exc.http_status, exc.name, exc.location, exc.description)


@app.exception_handler(AccountLimitError)
async def _account_limits(_: Request, exc: AccountLimitError) -> JSONResponse:
    return _errors(401, "tasks", "body", "account limits reached")


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _errors(exc.status_code, "path", "path", f"{exc.detail}: {request.method} {request.url.path}")


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    location = str(first["loc"][0]) if first["loc"] else "body"
    return _errors(400, ".".join(map(str, first["loc"][1:])) or location, location, first["msg"])


@app.exception_handler(rex.RayActorError)
@app.exception_handler(rex.ActorUnavailableError)
@app.exception_handler(asyncio.TimeoutError)
async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("service unavailable: %s", type(exc).__name__)
    return _errors(503, "service", "body", "the service is temporarily unavailable, retry later")


@app.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error")
    return _errors(500, "service", "body", "internal error")


def _lines(first: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        yield json.dumps(first) + "\n"
        async for doc in rest:
            yield json.dumps(doc) + "\n"

    return StreamingResponse(body(), media_type=STREAM_MEDIA_TYPE)


@serve.deployment(max_ongoing_requests=10_000, graceful_shutdown_timeout_s=5)
@serve.ingress(app)
class Api:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.service = Service.lookup(settings.ray_namespace)
        self.authenticate = Authenticator(self.service.jobs)

    @app.get("/ping", include_in_schema=False)
    async def ping(self) -> dict[str, str]:
        """Liveness of this replica alone (and the bare route of the API benchmark)."""
        return {"status": "ok"}

    @app.get("/health")
    async def health(self) -> JSONResponse:
        """200 once tasks can be created (the job manager has re-queued unfinished tasks)."""
        try:
            state = await asyncio.wait_for(self.service.ready(), timeout=10)
        except (asyncio.TimeoutError, rex.RayError):
            return _errors(503, "service", "body", "the service is starting or unavailable")
        return JSONResponse({"status": "ok", **state})

    @app.post("/v2/create")
    async def create(self, request: Request) -> list[dict[str, Any]]:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        return await self.service.create(
            account, task_definitions(body), block=flag(body.get("block"), "block", "body")
        )

    @app.post("/v2/create_stream")
    async def create_stream(self, request: Request) -> StreamingResponse:
        body = await json_body(request, self.settings.max_request_bytes)
        account = await self.authenticate(request, body)
        docs = await self.service.create(account, task_definitions(body))
        return _lines(*await self.service.open_stream([doc["key"] for doc in docs]))

    @app.get("/v2/status")
    async def status_get(self, request: Request) -> list[dict[str, Any]]:
        q = request.query_params
        return await self.service.status(
            task_keys(q.getlist("tasks"), "querystring"),
            block=flag(q.get("block"), "block", "querystring"),
            details=flag(q.get("details"), "details", "querystring"),
        )

    @app.post("/v2/status")
    async def status_post(self, request: Request) -> list[dict[str, Any]]:
        body = await json_body(request, self.settings.max_request_bytes)
        return await self.service.status(
            task_keys(body.get("tasks"), "body"),
            block=flag(body.get("block"), "block", "body"),
            details=flag(body.get("details"), "details", "body"),
        )

    @app.get("/v2/status_stream")
    @app.get("/v2/stream")
    async def status_stream_get(self, request: Request) -> StreamingResponse:
        keys = task_keys(request.query_params.getlist("tasks"), "querystring")
        return _lines(*await self.service.open_stream(keys))

    @app.post("/v2/status_stream")
    @app.post("/v2/stream")
    async def status_stream_post(self, request: Request) -> StreamingResponse:
        body = await json_body(request, self.settings.max_request_bytes)
        return _lines(*await self.service.open_stream(task_keys(body.get("tasks"), "body")))


def build(settings: Settings) -> serve.Application:
    return Api.options(
        num_replicas=settings.api_replicas,
        ray_actor_options={"num_cpus": settings.api_replica_cpus},
    ).bind(settings)
