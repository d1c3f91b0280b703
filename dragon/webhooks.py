"""Standard Webhooks (https://www.standardwebhooks.com) signatures for callbacks.

Receivers verify them with the libraries they already use (``standardwebhooks`` for
Python, JavaScript, Go, ...) or with :func:`verify` here. A signing secret is
``whsec_`` + base64 of 24 random bytes, per account; while a rotated one is still valid,
callbacks carry one signature per secret, space-separated, as the specification allows, so
a receiver holding either verifies them.

Standard library only: the client-only install imports this module too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "whsec_"
TOLERANCE = 300  # seconds a timestamp may be off, as in the specification's libraries


class WebhookVerificationError(Exception):
    """A callback whose signature, or timestamp, does not check out."""


def new_secret() -> str:
    """A fresh signing secret (192 bits)."""
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def _signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one per secret)."""
    stamp = str(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": " ".join(_signature(s, msg_id, stamp, body) for s in secrets_),
    }


def verify(secret: str, request_headers: Mapping[str, str], body: bytes | str, tolerance: float = TOLERANCE) -> Any:
    """The JSON body of a callback signed with ``secret``, once its signature and its
    timestamp (within ``tolerance`` seconds of now) check out; else
    :class:`WebhookVerificationError`. Pass the raw body, before any JSON parsing."""
    found = {k.lower(): v for k, v in request_headers.items()}
    try:
        msg_id, stamp, signatures = found["webhook-id"], found["webhook-timestamp"], found["webhook-signature"]
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from None
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        raise WebhookVerificationError("the timestamp is missing or too far from now")
    raw = body.encode() if isinstance(body, str) else body
    expected = _signature(secret, msg_id, stamp, raw)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise WebhookVerificationError("no signature matches this secret")
    return json.loads(raw)
