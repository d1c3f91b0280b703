"""The callback actor: POSTs final statuses to ``url_callback`` / ``url_errback``.

Deliveries are rows of the journal, written in the same transaction as the ended
status they carry, so none is lost by a crash and none exists for a task that has not
ended. This actor sends what is due, at least once: connection errors, time-outs, 5xx,
408 and 429 are retried with exponential back-off and jitter for ``callback_retry_period``
seconds; any other 4xx is final.

Each request is signed (see docs/callbacks.md)::

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
from typing import Any

import httpx
import ray

from dragon.config import Settings
from dragon.journal import Delivery, open_journal
from dragon.storage.fetch import UnsafeURLError, pinned_request

log = logging.getLogger(__name__)

ACTOR_NAME = "dragon-callbacks"


def signature(key: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + HMAC-SHA256 of ``<timestamp>.<body>`` keyed by ``key``."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1000)
class CallbackActor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.journal = open_journal(settings)
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._loop: asyncio.Task | None = None

    async def start(self) -> None:
        """Begin sending; idempotent. Called at deployment and by status shards."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.ensure_future(self._run())

    async def wake(self) -> None:
        """A delivery became due: look now rather than at the next tick."""
        await self.start()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                due = self.journal.due_deliveries(time.time(), 100)
                for delivery in due:
                    if delivery.id not in self._in_flight:
                        self._in_flight.add(delivery.id)
                        asyncio.ensure_future(self._attempt(delivery))
                upcoming = self.journal.next_delivery_at()
            except Exception:
                log.exception("reading due deliveries failed")
                upcoming = None
            wait = 1.0 if upcoming is None else max(0.0, min(1.0, upcoming - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait or 0.05)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

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
                delivery.next_at = now + backoff * (0.5 + random.random() / 2)
            self.journal.save_delivery(delivery)
        except Exception:
            log.exception("delivery %s failed unexpectedly", delivery.id)
        finally:
            self._in_flight.discard(delivery.id)
            self._wake.set()

    async def _send(self, delivery: Delivery) -> dict[str, Any]:
        status = self.journal.statuses([delivery.task_key]).get(delivery.task_key)
        account = self.journal.account(delivery.account)
        if status is None or account is None:
            return {"ok": False, "final": True, "error": "the task or its account no longer exists"}
        body = json.dumps(status.public()).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Dragon-Delivery": delivery.id,
            "X-Dragon-Timestamp": timestamp,
            "X-Dragon-Signature": signature(account.secret_hash, timestamp, body),
        }
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
        return {"ok": False, "final": not retryable, "http_status": code}
