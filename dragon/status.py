"""The one status model: what a task is (:class:`TaskRecord`) and where it stands (:class:`TaskStatus`).

Both are plain, JSON-serialisable dataclasses: they travel between Ray processes and
are written to the journal as they are.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["queued", "executing", "success", "error"]
ENDED: frozenset[str] = frozenset({"success", "error"})

# Parameter names whose values are credentials: never shown in details, logs or statuses.
SECRET_FIELDS = ("secret", "token", "password", "api_key", "developer_key", "access_token", "oauth", "consumer_key")


BUCKET_BITS = 31  # a key's bucket fits a signed 32-bit column in every journal backend


def new_key(shard: int = 0, shards: int = 1) -> str:
    """26 characters of RFC 4648 base32, padding stripped (as the original keys): 128
    random bits, of which the bucket is drawn so that ``shard_of(key, shards) == shard``.

    The service chooses which shard owns a task when it creates it; the key then says so
    to every process, with no lookup.
    """
    raw = bytearray(uuid.uuid4().bytes)
    if shards > 1:
        number = int.from_bytes(raw[:4], "big") >> 1
        number -= number % shards - shard
        if number >= 1 << BUCKET_BITS:
            number -= shards
        raw[:4] = ((number << 1) | (raw[3] & 1)).to_bytes(4, "big")
    return base64.b32encode(bytes(raw)).decode("ascii").rstrip("=")


def bucket(key: str) -> int:
    """A key's place in [0, 2**31): its shard is ``bucket % shards``, also in SQL."""
    return int.from_bytes(base64.b32decode(key + "======")[:4], "big") >> 1


def shard_of(key: str, shards: int) -> int:
    return bucket(key) % shards if shards > 1 else 0


def is_key(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 26:
        return False
    try:
        base64.b32decode(value + "======")
    except (ValueError, TypeError):
        return False
    return True


def now_iso() -> str:
    """ISO 8601 with microseconds and ``+00:00``, the format of the spec's examples."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def redact(value: Any) -> Any:
    """Copy of ``value`` with credential-looking fields replaced, for details and logs."""
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if any(s in k.lower() for s in SECRET_FIELDS) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class TaskRecord:
    """A validated task definition, as accepted by ``create``."""

    key: str
    account: str
    task_name: str
    params: dict[str, Any]
    task_store: dict[str, Any] = field(default_factory=lambda: {"type": "persistent"})
    extra: dict[str, Any] = field(default_factory=dict)
    # The outputs of other tasks it takes as inputs (dragon/pipelines.py): it waits for them.
    uses: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        return cls(**data)


@dataclass
class TaskStatus:
    """Where a task stands. ``version`` orders changes within one status shard."""

    key: str
    status: State
    events: dict[str, str]
    progress: Any = None
    result: Any = None
    error: Any = None
    attempts: int = 0
    version: int = 0
    callbacks: dict[str, str] | None = None  # {"account", "success"?, "error"?}: where the end is POSTed
    warnings: list[str] = field(default_factory=list)  # what the task ignored in its input: shown in details

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def public(self) -> dict[str, Any]:
        """The status object of the API: ``result`` only on success or partial results."""
        doc: dict[str, Any] = {
            "status": self.status,
            "key": self.key,
            "progress": self.progress,
            "events": dict(self.events),
        }
        if self.result is not None and self.status in ("success", "executing"):
            doc["result"] = self.result
        elif self.status == "success":
            doc["result"] = None
        if self.status == "error":
            doc["error"] = self.error
        return doc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskStatus:
        return cls(**data)

    @classmethod
    def queued(cls, record: TaskRecord) -> TaskStatus:
        given = {"success": record.params.get("url_callback"), "error": record.params.get("url_errback")}
        urls: dict[str, str] = {k: v for k, v in given.items() if isinstance(v, str) and v}
        callbacks = {"account": record.account, **urls} if urls else None
        return cls(key=record.key, status="queued", events={"queued": now_iso()}, callbacks=callbacks)

    def callback_url(self) -> str | None:
        """Where this ended status must be delivered, if anywhere."""
        return (self.callbacks or {}).get(self.status) if self.ended else None
