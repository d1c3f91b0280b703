"""Reading requests the way the original clients send them.

Bodies are JSON whatever their Content-Type; booleans come as JSON booleans or as
querystring words; ``tasks`` is a list or a single value.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from dragon.errors import RequestError
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
