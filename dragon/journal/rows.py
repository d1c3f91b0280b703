"""The rows every journal backend stores, built once so the backends cannot disagree:
task and status JSON, the pending delivery of an ended status, account JSON."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from dragon.accounts import Account
from dragon.journal import Delivery
from dragon.status import TaskRecord, TaskStatus, bucket, now_iso

TASK_COLUMNS = "key, account, task_name, state, record, status, created_at, updated_at, bucket"
# an account's unfinished tasks by state: a range of the history index (account, state, ...)
UNFINISHED_COUNTS = (
    "SELECT state, COUNT(*) FROM tasks WHERE account = %s AND state IN ('queued', 'executing') GROUP BY state"
)
DELIVERY_COLUMNS = "id, task_key, account, url, state, attempts, first_at, next_at, bucket"


@dataclass
class WriteRows:
    """One ``Journal.write`` as rows: new tasks, status updates, new deliveries."""

    created: list[tuple[str, str, str, str, str, str, str, str, int]]  # TASK_COLUMNS
    updated: list[tuple[str, str, str, str]]  # state, status, updated_at, key
    deliveries: list[tuple[str, str, str, str, str, str, float, float, int]]  # DELIVERY_COLUMNS

    def __bool__(self) -> bool:
        return bool(self.created or self.updated)


def write_rows(created: Iterable[tuple[TaskRecord, TaskStatus]], updated: Iterable[TaskStatus]) -> WriteRows:
    """The rows of one write. An ended status with a callback URL gets its pending
    delivery here, so every backend commits it in the same transaction as the status."""
    now = now_iso()
    created = list(created)
    updated = list(updated)
    moment = time.time()
    return WriteRows(
        created=[
            (
                record.key,
                record.account,
                record.task_name,
                status.status,
                json.dumps(record.to_json()),
                json.dumps(status.to_json()),
                now,
                now,
                bucket(record.key),
            )
            for record, status in created
        ],
        updated=[(s.status, json.dumps(s.to_json()), now, s.key) for s in updated],
        deliveries=[
            (
                uuid.uuid4().hex,
                s.key,
                (s.callbacks or {}).get("account", ""),
                url,
                "pending",
                "[]",
                moment,
                moment,
                bucket(s.key),
            )
            for s in [status for _, status in created] + updated
            if (url := s.callback_url())
        ],
    )


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    id_, task_key, account, url, state, attempts, first_at, next_at, _ = row
    return Delivery(id_, task_key, account, url, state, json.loads(attempts), first_at, next_at)


def account_to_json(account: Account) -> str:
    data = asdict(account)
    data["referrers"] = list(account.referrers)
    return json.dumps(data)


def account_from_json(text: str) -> Account:
    data = json.loads(text)
    data["referrers"] = tuple(data.get("referrers", ()))
    return Account(**data)
