"""Reading requests the way the original clients send them: the body is JSON whatever
its Content-Type (or none), and a GET may carry a body nobody reads. The shapes are in
dragon/protocol.py; :func:`body_as` and :func:`query_as` parse with them."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from dragon.protocol import parse
from dragon.serve.errors import RequestError

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; {} when there is none. Read once, then kept."""
    cached = getattr(request.state, "json", None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError("body", f"the body is larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise RequestError("body", f"the body is larger than {limit} bytes")
    body: Any = {}
    if raw.strip() and request.method not in ("GET", "HEAD"):
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestError("body", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError("body", "the body must be a JSON object")
    request.state.json = body
    return body


def body_as(model: type[M], body: dict[str, Any]) -> M:
    return parse(model, body)


def query_as(model: type[M], request: Request) -> M:
    """The query string as ``model``: a parameter given several times is a list."""
    query = request.query_params
    return parse(model, {k: (vs if len(vs := query.getlist(k)) > 1 else vs[0]) for k in query})
