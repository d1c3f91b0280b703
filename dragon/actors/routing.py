"""The service's view of the shards: which shard a call goes to, and answers in request order.

Every call from the layer above to a shard goes through :class:`Shards`, so that layer
(dragon/service.py) holds no Ray call of its own and is tested with a fake.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from collections.abc import Awaitable
from typing import Any, TypeVar

import ray
from ray.exceptions import RayTaskError

from dragon.accounts import Account
from dragon.actors.book import Found
from dragon.actors.messages import Details, Submission
from dragon.actors.shard import actor_name
from dragon.config import Settings
from dragon.errors import RefusedError
from dragon.journal import History
from dragon.status import shard_of

T = TypeVar("T")


class Shards:
    def __init__(self, handles: list[ray.actor.ActorHandle]):
        self.handles = handles
        self._turn = itertools.count(random.randrange(len(handles)))

    @classmethod
    def lookup(cls, settings: Settings) -> Shards:
        return cls([ray.get_actor(actor_name(i), namespace=settings.ray_namespace) for i in range(settings.shards)])

    def __len__(self) -> int:
        return len(self.handles)

    def pick(self, account: str, idempotency_key: str | None = None) -> int:
        """The shard a create request goes to: the next in turn, so requests spread; but
        one Idempotency-Key always goes to the same shard, which serialises duplicates."""
        if idempotency_key is not None:
            digest = hashlib.sha256(f"{account}\0{idempotency_key}".encode()).digest()
            return int.from_bytes(digest[:4], "big") % len(self.handles)
        return next(self._turn) % len(self.handles)

    async def ready(self) -> dict[str, Any]:
        answers: list[Any] = await asyncio.gather(*(h.ready.remote() for h in self.handles))
        return {
            "shards": len(answers),
            "running": sum(a["running"] for a in answers),
            "queued": sum(a["queued"] for a in answers),
        }

    async def settings(self) -> Settings:
        return await self.handles[0].settings.remote()

    async def account(self, **credential: str) -> Account | None:
        """An account by name or credential digest; any shard reads the journal, so the
        lookups of many credentials spread over them."""
        value = next(iter(credential.values()))
        shard = int.from_bytes(hashlib.sha256(value.encode()).digest()[:4], "big") % len(self.handles)
        return await refusals(self.handles[shard].account.remote(**credential))

    async def accounts(self) -> list[Account]:
        return await refusals(self._any().accounts.remote())

    async def history(self, query: History) -> list[tuple[str, str, str]]:
        """Any shard reads the journal, which holds every shard's tasks."""
        return await refusals(self._any().history.remote(query))

    async def unfinished_counts(self, account: str) -> dict[str, int]:
        return await refusals(self._any().unfinished_counts.remote(account))

    async def create(self, shard: int, submission: Submission) -> list[dict[str, Any]]:
        return await refusals(self.handles[shard].create.remote(submission))

    async def get(self, keys: list[str]) -> list[Found]:
        return await self._per_key("get", keys)

    async def wait_ended(self, keys: list[str], timeout: float) -> list[Found]:
        return await self._per_key("wait_ended", keys, timeout)

    async def changes(self, cursors: dict[str, int], timeout: float) -> list[tuple[str, int, dict[str, Any]]]:
        """Long poll on every shard holding one of the keys; returns when any has news."""
        groups = self._split(list(cursors))
        refs: list[Any] = [
            self.handles[i].changes.remote({k: cursors[k] for k in ks}, timeout) for i, ks in groups.items()
        ]
        if len(refs) == 1:
            return await _cancel_on_exit(refs[0])
        pending = {asyncio.ensure_future(_cancel_on_exit(ref)) for ref in refs}
        try:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()
        return sorted((c for task in done for c in task.result()), key=lambda c: c[1])

    async def details(self, keys: list[str]) -> dict[str, Details]:
        groups = self._split(keys)
        answers: list[dict[str, Details]] = await asyncio.gather(
            *(refusals(self.handles[i].details.remote(ks)) for i, ks in groups.items())
        )
        return {k: v for answer in answers for k, v in answer.items()}

    async def cancel(self, account: str, keys: list[str]) -> dict[str, str]:
        groups = self._split(list(dict.fromkeys(keys)))
        answers: list[dict[str, str]] = await asyncio.gather(
            *(refusals(self.handles[i].cancel.remote(account, ks)) for i, ks in groups.items())
        )
        return {k: v for answer in answers for k, v in answer.items()}

    # internals

    def _any(self) -> ray.actor.ActorHandle:
        """The next shard in turn, for reads of the journal any shard can make."""
        return self.handles[next(self._turn) % len(self.handles)]

    def _split(self, keys: list[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(shard_of(key, len(self.handles)), []).append(key)
        return groups

    async def _per_key(self, method: str, keys: list[str], *args: Any) -> list[Any]:
        """Call ``method`` on each shard with its keys; answers come back in ``keys`` order."""
        groups = self._split(list(dict.fromkeys(keys)))
        answers = await asyncio.gather(
            *(refusals(getattr(self.handles[i], method).remote(ks, *args)) for i, ks in groups.items())
        )
        found = {k: a for ks, ans in zip(groups.values(), answers) for k, a in zip(ks, ans)}
        return [found[k] for k in keys]


async def refusals(call: Awaitable[T]) -> T:
    """A shard's refusal (limits, a reused Idempotency-Key...) raised as itself."""
    try:
        return await call
    except RayTaskError as exc:
        if isinstance(exc.cause, RefusedError):
            raise exc.cause from None
        raise


async def _cancel_on_exit(ref: ray.ObjectRef) -> Any:
    """Await an actor call; if the caller goes away (client disconnected), cancel it too."""
    try:
        return await refusals(ref)
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise
