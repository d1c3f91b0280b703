"""Cross-origin requests from web pages (the spec's api key + referrer authentication
exists for JavaScript in pages; the official browser client posts from the page's own
origin).

Which origins may read answers: the API sends no cookies and reads none, so CORS guards
nothing but *reading*, and the natural check is the one the spec already has, the
account's referrer whitelist:

- a request that authenticates (create, cancel, the Storage API) is readable from an
  origin its account whitelists;
- a request that does not (status, streams, output files) is readable from an origin
  some account whitelists, or one of ``Settings.cors_origins``;
- a preflight (which carries no credentials) is answered for those same origins.

Answers to other origins carry no ``Access-Control-Allow-Origin``: the browser keeps
them from the page. Errors are answered like the rest, so a page can read why.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.accounts import Account

METHODS = "GET, POST, PUT, DELETE, HEAD, OPTIONS"
HEADERS = frozenset({"content-type", "authorization", "idempotency-key", "range", "accept", "last-event-id"})
MAX_AGE = "600"
REFRESH = 10.0  # seconds the whitelists of every account are kept
RECHECK = 1.0  # an origin no whitelist allows makes them be read again, at most this often


class Origins:
    """Which origins may read answers; the accounts' whitelists are read every REFRESH s."""

    def __init__(self, accounts: Callable[[], Awaitable[list[Account]]], always: list[str]):
        self._accounts = accounts
        self._always = set(always)
        self._cache: tuple[float, list[Account]] = (0.0, [])

    async def anyone_allows(self, origin: str) -> bool:
        if origin in self._always or "*" in self._always:
            return True
        at, accounts = self._cache
        age = time.monotonic() - at
        if age > REFRESH or (age > RECHECK and not any(allows(a, origin) for a in accounts)):
            accounts = await self._accounts()  # a whitelist added a moment ago counts
            self._cache = (time.monotonic(), accounts)
        return any(allows(account, origin) for account in accounts)


def allows(account: Account, origin: str) -> bool:
    """An origin (``https://host[:port]``) against the account's referrer patterns."""
    return account.referrer_allowed(origin.rstrip("/") + "/")


class CorsMiddleware:
    """``origins(scope)`` gives the replica's :class:`Origins`; routes that authenticate
    leave the account in ``scope["state"]["account"]``."""

    def __init__(self, app: ASGIApp, origins: Callable[[], Origins | None]):
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        origin = Headers(scope=scope).get("origin")
        origins = self.origins()
        if not origin or origins is None:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            return await self._preflight(origin, origins, headers, send)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response = MutableHeaders(scope=message)
                response.append("Vary", "Origin")
                account: Any = scope.get("state", {}).get("account")
                readable = allows(account, origin) if account is not None else await origins.anyone_allows(origin)
                if readable:
                    response["Access-Control-Allow-Origin"] = origin
                    response["Access-Control-Expose-Headers"] = "Content-Length, Content-Range, Accept-Ranges"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: str, origins: Origins, headers: Headers, send: Send) -> None:
        asked = {h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",") if h.strip()}
        allowed = await origins.anyone_allows(origin) and asked <= HEADERS
        answer = [(b"vary", b"Origin")]
        if allowed:
            answer += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-allow-methods", METHODS.encode()),
                (b"access-control-allow-headers", ", ".join(sorted(HEADERS)).encode()),
                (b"access-control-max-age", MAX_AGE.encode()),
            ]
        await send({"type": "http.response.start", "status": 204 if allowed else 403, "headers": answer})
        await send({"type": "http.response.body", "body": b""})
