"""Every refusal as the spec's error body, in one place.

Below the web layer, refusals are domain errors (dragon/errors.py: invalid request,
credentials, account limits, unavailable); here each gets its HTTP status and the
location of the field at fault. :class:`RequestError` is for what only HTTP can get
wrong (a body too large, not JSON): it carries its own status and location.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import exceptions as rex
from starlette.exceptions import HTTPException

from dragon.errors import AccountLimitError, CredentialsError, InvalidRequestError, RefusedError, UnavailableError

log = logging.getLogger(__name__)

STATUS: dict[type[RefusedError], int] = {
    InvalidRequestError: 400,
    CredentialsError: 401,
    AccountLimitError: 401,
    UnavailableError: 503,
}
HEADER_FIELDS = frozenset({"Idempotency-Key", "Referer", "Authorization"})


class RequestError(Exception):
    """A request HTTP itself gets wrong (HTTP 400 unless said otherwise)."""

    def __init__(self, name: str, description: str, location: str = "body", http_status: int = 400):
        super().__init__(description)
        self.name = name
        self.description = description
        self.location = location
        self.http_status = http_status


RETRY_AFTER = "2"  # seconds a client waits after a 503: a restarting shard is back in about that


def error_response(status: int, name: str, location: str, description: str) -> JSONResponse:
    body = {"status": "error", "errors": [{"name": name, "location": location, "description": description}]}
    return JSONResponse(body, status_code=status, headers={"Retry-After": RETRY_AFTER} if status == 503 else None)


def location_of(request: Request, field: str) -> str:
    """Where a field came from: a header, the path, else the query (GET) or the body."""
    if field in HEADER_FIELDS:
        return "header"
    if field == "path":
        return "path"
    return "querystring" if request.method in ("GET", "HEAD") else "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RefusedError)
    async def _refused(request: Request, exc: RefusedError) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
        if status == 503:
            log.warning("service unavailable: %s", exc.description)
        return error_response(status, exc.field, location_of(request, exc.field), exc.description)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.http_status, exc.name, exc.location, exc.description)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "path", "path", f"{exc.detail}: {request.method} {request.url.path}")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        location = str(first["loc"][0]) if first["loc"] else "body"
        return error_response(400, ".".join(map(str, first["loc"][1:])) or location, location, str(first["msg"]))

    @app.exception_handler(rex.RayActorError)
    @app.exception_handler(rex.ActorUnavailableError)
    @app.exception_handler(asyncio.TimeoutError)
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("service unavailable: %s", type(exc).__name__)
        return error_response(503, "service", "body", "the service is temporarily unavailable, retry later")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "service", "body", "internal error")
