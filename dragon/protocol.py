"""The Tasks API's request and answer shapes, declared once.

The service parses requests with these models (dragon/serve/), the OpenAPI document is
generated from them, and the Python client (dragon/client.py) builds its requests and
reads its answers with them. Parsing is as lenient as the original's clients need: a
single value where a list is expected, booleans as words or numbers, unknown fields
ignored. Every refusal names the field at fault (:func:`refusal`), as the spec's errors do.

Credentials (``secret``, ``api_key``) are not part of these shapes: any body may carry
them, and dragon/serve/auth.py reads them wherever they are.

Imports nothing of the server: the client installs without it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema

from dragon.errors import InvalidRequestError
from dragon.status import is_key

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})
MAX_EXPIRATION_DAYS = 36_500  # a century; larger dates overflow


def _flag(value: Any, info: ValidationInfo) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError(f"{info.field_name} must be a boolean")


def _keys(value: Any) -> list[str]:
    if value is None or value == [] or value == "":
        raise ValueError("tasks is missing")
    keys = value if isinstance(value, list) else [value]
    for key in keys:
        if not is_key(key):
            raise ValueError(f"{str(key)[:64]!r} is not a task key")
    return keys


def _definitions(value: Any) -> list[Any]:
    if value is None:
        raise ValueError("tasks is missing")
    return value if isinstance(value, list) else [value]


def _moment(value: Any, info: ValidationInfo) -> datetime | None:
    """An ISO 8601 date; without a timezone it is UTC, as the spec says."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{(info.field_name or 'date').rstrip('_')} must be an ISO 8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _days(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ValueError("max_age must be a number") from None
    if not days >= 0:
        raise ValueError("max_age must be at least 0")
    return days


def _urls(value: Any) -> list[str] | None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(u, str) for u in value)):
        raise ValueError("urls must be a list of URLs")
    return value


def _expiration(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EXPIRATION_DAYS:
        raise ValueError(f"days must be an integer from 0 (never delete) to {MAX_EXPIRATION_DAYS}")
    return value


STATES = ("queued", "executing", "success", "error")
MAX_HISTORY_PAGE = 1000


def _states(value: Any) -> list[str] | None:
    """One state, several (repeated, or a comma-separated list)."""
    if value is None or value == "" or value == []:
        return None
    states = [
        s.strip() for v in (value if isinstance(value, list) else [value]) for s in str(v).split(",") if s.strip()
    ]
    for state in states:
        if state not in STATES:
            raise ValueError(f"status must be one of {', '.join(STATES)}")
    return states


def _limit(value: Any) -> int:
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise ValueError("limit must be an integer") from None
    if not 1 <= limit <= MAX_HISTORY_PAGE:
        raise ValueError(f"limit must be from 1 to {MAX_HISTORY_PAGE}")
    return limit


KEY = {"type": "string", "pattern": "^[A-Z2-7]{26}$", "description": "a task key"}
Flag = Annotated[
    bool,
    BeforeValidator(_flag),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "boolean"},
                {"type": "string", "enum": sorted(TRUE | FALSE - {""})},
                {"type": "integer", "enum": [0, 1]},
            ]
        }
    ),
]
Keys = Annotated[
    list[str],
    BeforeValidator(_keys),
    WithJsonSchema(
        {
            "oneOf": [KEY, {"type": "array", "items": KEY, "minItems": 1}],
            "description": "task keys (one key alone is also accepted)",
        }
    ),
]


class Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def body(self) -> dict[str, Any]:
        """As a client sends it (the client builds it unchecked: the service judges)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)


class CreateRequest(Shape):
    """``POST /v2/create`` and ``/v2/create_stream``."""

    tasks: Annotated[
        list[Any],
        BeforeValidator(_definitions),
        WithJsonSchema(
            {
                "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
                "description": "task definitions (one definition alone is also accepted): see the Task schemas",
            }
        ),
    ]
    block: Flag = False
    idempotency_key: str | None = Field(default=None, description="as the Idempotency-Key header")


class StatusRequest(Shape):
    """``GET|POST /v2/status``: the query string or the body."""

    tasks: Keys
    block: Flag = False
    details: Flag = False


class KeysRequest(Shape):
    """``/v2/status_stream``, ``/v2/stream`` and ``/v2/cancel``."""

    tasks: Keys


class ListFilesQuery(Shape):
    recursive: Flag = False


class DeleteFilesRequest(Shape):
    """``DELETE /v2/storage/files/<path>``: given ``urls`` are the whole selection."""

    urls: Annotated[list[str] | None, BeforeValidator(_urls)] = Field(
        default=None, description="absolute URLs to delete"
    )
    dry_run: Flag = False
    from_: Annotated[datetime | None, BeforeValidator(_moment)] = Field(default=None, alias="from")
    to: Annotated[datetime | None, BeforeValidator(_moment)] = None
    max_age: Annotated[float | None, BeforeValidator(_days)] = Field(default=None, description="days")


class ExpirationRequest(Shape):
    days: Annotated[int, BeforeValidator(_expiration)] = Field(description="0: never delete")


class BatchRequest(Shape):
    """``POST /v2/batch`` (not in the v2 spec): one task type over a manifest's rows."""

    task_name: str
    input: str | None = Field(default=None, description="manifest URL (.parquet, .csv or .jsonl)")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters shared by every row")
    task_store: dict[str, Any] | None = None
    url_callback: str | None = None
    url_errback: str | None = None
    idempotency_key: str | None = None

    def definition(self) -> dict[str, Any]:
        """As the definition of a ``batch`` task."""
        extra = {
            k: v
            for k, v in self.model_dump(include={"task_store", "url_callback", "url_errback"}).items()
            if v is not None
        }
        return {"task_name": "batch", "task": self.task_name, "input": self.input, "params": self.params, **extra}


class HistoryQuery(Shape):
    """``GET /v2/tasks`` (not in the v2 spec): the caller's tasks, newest first."""

    status: Annotated[list[str] | None, BeforeValidator(_states)] = Field(
        default=None, description="only tasks in these states (queued, executing, success, error)"
    )
    task_name: str | None = Field(default=None, description="only tasks of this type")
    from_: Annotated[datetime | None, BeforeValidator(_moment)] = Field(
        default=None, alias="from", description="only tasks created at or after this ISO 8601 date"
    )
    to: Annotated[datetime | None, BeforeValidator(_moment)] = Field(
        default=None, description="only tasks created before this ISO 8601 date"
    )
    cursor: str | None = Field(default=None, description="the previous page's cursor: the page after it")
    limit: Annotated[int, BeforeValidator(_limit)] = Field(default=100, description=f"1 to {MAX_HISTORY_PAGE}")

    def params(self) -> dict[str, Any]:
        """As query parameters (statuses comma-separated)."""
        body = self.body()
        if isinstance(body.get("status"), list):
            body["status"] = ",".join(body["status"])
        return body


class SxmlCheckRequest(Shape):
    """``POST /v2/sxml/check`` (not in the v2 spec): a video.create definition checked and
    timed, without rendering."""

    definition: str = Field(description="the movie, in SXML")
    lengths: dict[str, float] = Field(
        default_factory=dict,
        description="seconds of audio or video sources (by "
        "filename) whose length the timing needs; others are timed as unknown",
    )


class SxmlCheck(BaseModel):
    """The check: ``valid``; if not, ``errors`` ``[{line, message}]``; if so, the movie's
    ``duration``, the definition ``annotated`` with when each node plays, ``warnings`` (what
    the renderer ignores), ``timing`` by line and ``unknown_lengths`` (sources timed without their length)."""

    valid: bool
    errors: list[dict[str, Any]] = []
    duration: float | None = None
    annotated: str | None = None
    timing: list[dict[str, Any]] = Field(
        default_factory=list,
        description="each timed node: its line, tag, start and duration in seconds, in document order",
    )
    warnings: list[str] = []
    unknown_lengths: list[str] = []


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
        return self.status in ("success", "error")


class HistoryPage(BaseModel):
    """A page of ``GET /v2/tasks``: statuses as ``/v2/status`` gives them, newest first,
    and the ``cursor`` of the next page (null on the last)."""

    tasks: list[Status]
    cursor: str | None = None


class Problem(BaseModel):
    name: str
    location: str
    description: str


class Errors(BaseModel):
    """Every refusal's body: ``{"status": "error", "errors": [{name, location, description}]}``."""

    status: str = "error"
    errors: list[Problem]


def parse(model: type[BaseModel], data: Any) -> Any:
    """``data`` as ``model``, or the spec's refusal of its first fault."""
    if not isinstance(data, dict):
        raise InvalidRequestError("body", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc) from None


def refusal(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    field = field.rstrip("_")  # from_ is "from" on the wire
    if first["type"] == "missing":
        return InvalidRequestError(field, f"{field} is missing")
    message = str(first["msg"])
    return InvalidRequestError(field, message.removeprefix("Value error, "))
