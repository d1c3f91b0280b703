"""Reading requests the way the original clients send them.

Bodies are JSON whatever their Content-Type; booleans come as JSON booleans or as
querystring words; ``tasks`` is a list or a single value.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request

from dragon.serve.errors import RequestError
from dragon.status import is_key

TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off", ""}


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError("body", f"the body is larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise RequestError("body", f"the body is larger than {limit} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError("body", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("body", "the body must be a JSON object")
    return body


def flag(value: Any, name: str, location: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise RequestError(name, f"{name} must be a boolean", location)


def task_keys(value: Any, location: str) -> list[str]:
    if value is None or value == [] or value == "":
        raise RequestError("tasks", "tasks is missing", location)
    keys = value if isinstance(value, list) else [value]
    for key in keys:
        if not is_key(key):
            raise RequestError("tasks", f"{str(key)[:64]!r} is not a task key", location)
    return keys


def task_definitions(body: dict[str, Any]) -> list[Any]:
    if "tasks" not in body or body["tasks"] is None:
        raise RequestError("tasks", "tasks is missing")
    tasks = body["tasks"]
    return tasks if isinstance(tasks, list) else [tasks]


BATCH_PASSTHROUGH = ("task_store", "url_callback", "url_errback")


def batch_definition(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v2/batch``'s body as the definition of a ``batch`` task."""
    if not isinstance(body.get("task_name"), str):
        raise RequestError("task_name", "task_name is missing")
    definition = {"task_name": "batch", "task": body["task_name"], "input": body.get("input"),
                  "params": body.get("params") or {}}
    definition.update({k: body[k] for k in BATCH_PASSTHROUGH if k in body})
    return definition


def moment(value: Any, name: str) -> datetime | None:
    """An ISO 8601 date; without a timezone it is UTC, as the spec says."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(name, f"{name} must be an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def number(value: Any, name: str, location: str = "body", minimum: float = 0) -> float | None:
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RequestError(name, f"{name} must be a number", location) from None
    if not result >= minimum:
        raise RequestError(name, f"{name} must be at least {minimum}", location)
    return result
