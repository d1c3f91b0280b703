"""Accounts and credentials.

Secrets and api keys are stored as SHA-256 digests: they are generated with 128 random
bits, so a fast digest is enough to make a stolen journal useless, and it keeps the
per-request lookup an index probe. Operator-chosen secrets should be just as random.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import secrets as _secrets
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit


def new_secret() -> str:
    """26 upper-case base32 characters (128 bits), the shape of the original secrets."""
    return base64.b32encode(_secrets.token_bytes(16)).decode("ascii").rstrip("=")


def new_api_key() -> str:
    """13 lower-case base32 characters (64 bits), the shape of the original api keys."""
    return base64.b32encode(_secrets.token_bytes(8)).decode("ascii").rstrip("=").lower()


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    name: str
    secret_hash: str
    api_key_hash: str | None = None
    referrers: tuple[str, ...] = ()
    max_concurrent_tasks: int = 256
    max_queued_tasks: int = 100_000
    storage_expiration_days: int = 0  # persistent files older than this are deleted; 0 = never
    created_at: str = ""
    extra: dict = field(default_factory=dict)
    # Standard Webhooks signing secrets (dragon/webhooks.py): kept in clear, since signing
    # needs them, and out of repr so no log line shows them. A rotated-out secret still
    # signs until ``previous_webhook_secret_until`` (Unix seconds).
    webhook_secret: str = field(default="", repr=False)
    previous_webhook_secret: str = field(default="", repr=False)
    previous_webhook_secret_until: float = 0.0

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, digest(secret))

    def api_key_matches(self, api_key: str) -> bool:
        return self.api_key_hash is not None and hmac.compare_digest(self.api_key_hash, digest(api_key))

    def webhook_secrets(self, now: float) -> list[str]:
        """The secrets callbacks are signed with at ``now``: the current one, and the
        previous one during its grace period."""
        current = [self.webhook_secret] if self.webhook_secret else []
        if self.previous_webhook_secret and now < self.previous_webhook_secret_until:
            return current + [self.previous_webhook_secret]
        return current

    def with_new_webhook_secret(self, secret: str, grace: float, now: float) -> Account:
        """This account signing with ``secret`` from now on, and with the current secret
        too for ``grace`` seconds, so receivers can switch without losing a callback."""
        return replace(
            self,
            webhook_secret=secret,
            previous_webhook_secret=self.webhook_secret,
            previous_webhook_secret_until=now + grace if self.webhook_secret else 0.0,
        )

    def referrer_allowed(self, referrer: str | None) -> bool:
        """Whether a Referer header is in the whitelist.

        A pattern is a shell-style glob matched against the whole Referer URL and against
        its host alone, so both ``https://app.example.com/*`` and ``*.example.com`` work.
        """
        if not referrer:
            return False
        host = urlsplit(referrer).hostname or ""
        return any(
            fnmatch.fnmatchcase(referrer, pattern) or fnmatch.fnmatchcase(host, pattern) for pattern in self.referrers
        )

    def public(self) -> dict:
        return {
            "name": self.name,
            "referrers": list(self.referrers),
            "has_api_key": self.api_key_hash is not None,
            "max_concurrent_tasks": self.max_concurrent_tasks,
            "max_queued_tasks": self.max_queued_tasks,
            "storage_expiration_days": self.storage_expiration_days,
            "has_webhook_secret": bool(self.webhook_secret),
            "previous_webhook_secret_until": self.previous_webhook_secret_until or None,
            "created_at": self.created_at,
        }
