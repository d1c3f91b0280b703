"""The ``task_store`` of a task: which storage system receives its output files."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dragon.errors import InvalidParametersError


class _Store(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Persistent(_Store):
    type: Literal["persistent"]


class Volatile(_Store):
    type: Literal["volatile"]


class S3Signed(_Store):
    """The task's main output is PUT to ``url``; any other files go to volatile storage."""

    type: Literal["s3_signed"]
    url: str = Field(pattern=r"^https?://")


class YouTube(_Store):
    type: Literal["youtube"]
    access_token: str
    developer_key: str
    title: str
    description: str | None = None
    tags: list[str] = []
    category_id: int | None = None
    privacy_status: Literal["public", "private", "unlisted"] = "public"


TaskStore = Annotated[Persistent | Volatile | S3Signed | YouTube, Field(discriminator="type")]
_adapter: TypeAdapter = TypeAdapter(TaskStore)


def validate_store(raw: Any) -> dict[str, Any]:
    """The store as validated JSON; ``{"type": "persistent"}`` when none is given."""
    if raw is None:
        raw = {"type": "persistent"}
    try:
        return _adapter.validate_python(raw).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if str(p) not in ("persistent", "volatile", "s3_signed", "youtube")]
            name = ".".join(["task_store", *loc])
            message = "this field is required" if err["type"] == "missing" else err["msg"]
            fields.setdefault(name, []).append(message)
        raise InvalidParametersError(fields) from None
