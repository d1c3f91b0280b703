"""Callbacks: each shard POSTs the final statuses of its own tasks to ``url_callback`` /
``url_errback``, so no single process sends every callback of the cluster.

Deliveries are rows of the journal, written in the same transaction as the ended
status they carry, so none is lost by a crash and none exists for a task that has not
ended. A shard's :class:`Deliverer` sends the due deliveries of its bucket, at least once: connection errors, time-outs, 5xx,
408 and 429 are retried with exponential back-off and jitter for ``callback_retry_period``
seconds, waiting at least what a receiver's ``Retry-After`` asks; any other 4xx is final.

Each request carries the Standard Webhooks headers (dragon/webhooks.py), signed with the
account's webhook signing secrets, when it has one::

    webhook-id: <delivery id>              the same on every retry, for de-duplication
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")> [v1,<...>]

and, for receivers written before them, Dragon's own (see docs/callbacks.md)::

    X-Dragon-Delivery: <delivery id>       the same on every retry, for de-duplication
    X-Dragon-Timestamp: <unix seconds>
    X-Dragon-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>

where key is the SHA-256 hex digest of the account's secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import httpx

from dragon import webhooks
from dragon.config import Settings
from dragon.journal import Delivery, Journal
from dragon.retry_after import retry_after_seconds
from dragon.storage.fetch import UnsafeURLError, pinned_request

log = logging.getLogger(__name__)
T = TypeVar("T")


def signature(key: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + HMAC-SHA256 of ``<timestamp>.<body>`` keyed by ``key``."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class Deliverer:
    """Sends the due deliveries of shard ``shard`` of ``shards``; journal calls run on
    ``io`` (a thread), so the shard's event loop never waits on the database."""

    def __init__(self, settings: Settings, journal: Journal, shard: int, shards: int, io: Executor):
        self.settings = settings
        self.journal = journal
        self._shard, self._shards = shard, shards
        self._io = io
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._loop: asyncio.Task | None = None

    def start(self) -> None:
        """Begin sending; idempotent."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        """A delivery became due (its status was just committed): look now."""
        self.start()
        self._wake.set()

    async def _journal(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, method, *args)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self._journal(self.journal.due_deliveries, time.time(), 100, self._shard, self._shards)
                for delivery in due:
                    if delivery.id not in self._in_flight:
                        self._in_flight.add(delivery.id)
                        asyncio.ensure_future(self._attempt(delivery))
                upcoming = await self._journal(self.journal.next_delivery_at, self._shard, self._shards)
            except Exception:
                log.exception("reading due deliveries failed")
                upcoming = None
            wait = 1.0 if upcoming is None else max(0.0, min(1.0, upcoming - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait or 0.05)
            except TimeoutError:
                pass

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            outcome = await self._send(delivery)
            now = time.time()
            delivery.attempts.append({"at": now, **outcome})
            if outcome["ok"]:
                delivery.state = "delivered"
            elif outcome["final"] or now - delivery.first_at > self.settings.callback_retry_period:
                delivery.state = "failed"
            else:
                n = len(delivery.attempts)
                backoff = min(self.settings.callback_backoff_max, self.settings.callback_backoff * 2 ** (n - 1))
                asked = min(outcome.get("retry_after", 0.0), self.settings.callback_retry_period)
                delivery.next_at = now + max(backoff * (0.5 + random.random() / 2), asked)
            await self._journal(self.journal.save_delivery, delivery)
        except Exception:
            log.exception("delivery %s failed unexpectedly", delivery.id)
        finally:
            self._in_flight.discard(delivery.id)
            self._wake.set()

    async def _send(self, delivery: Delivery) -> dict[str, Any]:
        status = (await self._journal(self.journal.statuses, [delivery.task_key])).get(delivery.task_key)
        account = await self._journal(self.journal.account, delivery.account)
        if status is None or account is None:
            return {"ok": False, "final": True, "error": "the task or its account no longer exists"}
        body = json.dumps(status.public()).encode()
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Dragon-Delivery": delivery.id,
            "X-Dragon-Timestamp": str(now),
            "X-Dragon-Signature": signature(account.secret_hash, str(now), body),
        }
        signing = account.webhook_secrets(time.time())
        if signing:
            headers.update(webhooks.headers(signing, delivery.id, now, body))
        async with httpx.AsyncClient(timeout=self.settings.callback_timeout) as client:
            try:
                request = pinned_request(client, "POST", delivery.url, self.settings.allow_private_urls, headers, body)
            except UnsafeURLError as exc:
                return {"ok": False, "final": True, "error": str(exc)}
            try:
                response = await client.send(request)
            except httpx.TimeoutException:
                return {"ok": False, "final": False, "error": "timed out"}
            except httpx.HTTPError as exc:
                return {"ok": False, "final": False, "error": type(exc).__name__}
        code = response.status_code
        if 200 <= code < 300:
            return {"ok": True, "final": True, "http_status": code}
        retryable = code >= 500 or code in (408, 429)
        outcome: dict[str, Any] = {"ok": False, "final": not retryable, "http_status": code}
        after = retry_after_seconds(response.headers.get("retry-after"), time.time())
        if retryable and after is not None:
            outcome["retry_after"] = after
        return outcome
