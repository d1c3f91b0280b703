"""Credentials for creating tasks: a secret, or an api key plus a whitelisted Referer.

Looked up through a shard (the journal may live on another node) and cached briefly, so a create costs no extra round trip in the common case while a deleted
account stops working within ``TTL`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from dragon.accounts import Account, digest
from dragon.errors import CredentialsError
from dragon.service import Service

TTL = 5.0


class Authenticator:
    def __init__(self, service: Service):
        self._service = service
        self._cache: dict[tuple[str, str], tuple[float, Account]] = {}

    async def __call__(self, request: Request, body: dict[str, Any], secret_only: bool = False) -> Account:
        header_secret, header_key = _authorization(request.headers.get("authorization", ""))
        query = request.query_params if request.method in ("GET", "HEAD") else {}
        secret = body.get("secret") or header_secret or query.get("secret")
        api_key = body.get("api_key") or header_key or query.get("api_key")
        if isinstance(secret, str) and secret:
            account = await self._lookup("secret_hash", secret)
            if account is not None and account.secret_matches(secret):
                return account
        elif api_key and secret_only:
            raise CredentialsError("secret", "this method needs the account's secret")
        elif isinstance(api_key, str) and api_key:
            account = await self._lookup("api_key_hash", api_key)
            if account is not None and account.api_key_matches(api_key):
                if account.referrer_allowed(request.headers.get("referer")):
                    return account
                raise CredentialsError("Referer", "the referrer is not in the account's whitelist")
        elif secret is None and api_key is None:
            raise CredentialsError("secret", "credentials are missing: pass a secret or an api key")
        raise CredentialsError("secret", "invalid credentials")

    async def _lookup(self, column: str, credential: str) -> Account | None:
        hashed = digest(credential)
        cached = self._cache.get((column, hashed))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        account = await self._service.account(**{column: hashed})
        if account is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(column, hashed)] = (time.monotonic() + TTL, account)
        return account


def _authorization(header: str) -> tuple[str | None, str | None]:
    """(secret, api key) of an Authorization header: ``Secret <s>`` or ``Api-Key <k>``, the
    scheme in any case, as the spec and its clients write it; a lone token is a secret
    (clients of the original send their secret bare)."""
    scheme, _, value = header.strip().partition(" ")
    if not value:
        return (scheme or None), None
    scheme = scheme.lower()
    return (value.strip() if scheme == "secret" else None), (value.strip() if scheme in ("api-key", "apikey") else None)
