"""Standard Webhooks signatures (dragon/webhooks.py), checked with the receivers' own
library (``standardwebhooks``), and the signing secrets an account rotates."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as TheirError

from dragon import webhooks
from dragon.accounts import Account
from dragon.client import WebhookVerificationError, verify
from dragon.retry_after import retry_after_seconds as retry_after

BODY = json.dumps({"key": "k1", "status": "success", "events": {}, "result": "Hello"}).encode()


def _signed(secrets: list[str], body: bytes = BODY, at: int | None = None) -> dict[str, str]:
    return webhooks.headers(secrets, "delivery-1", int(time.time()) if at is None else at, body)


def test_the_standardwebhooks_library_verifies_our_signature() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(BODY, _signed([secret]))["key"] == "k1"
    with pytest.raises(TheirError):
        Webhook(webhooks.new_secret()).verify(BODY, _signed([secret]))


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new = webhooks.new_secret(), webhooks.new_secret()
    headers = _signed([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, headers)["status"] == "success"
        assert verify(secret, headers, BODY).result == "Hello"


def test_verify_refuses_a_changed_body_an_old_timestamp_and_missing_headers() -> None:
    secret = webhooks.new_secret()
    with pytest.raises(WebhookVerificationError):
        verify(secret, _signed([secret]), BODY.replace(b"Hello", b"Hullo"))
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify(secret, _signed([secret], at=int(time.time()) - 3600), BODY)
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify(secret, {"webhook-id": "x", "webhook-timestamp": str(int(time.time()))}, BODY)


def test_verify_takes_headers_in_any_case() -> None:
    secret = webhooks.new_secret()
    shouted = {k.title(): v for k, v in _signed([secret]).items()}
    assert verify(secret, shouted, BODY.decode()).key == "k1"


def test_a_rotated_secret_signs_only_during_its_grace_period() -> None:
    first = Account("a", "h", webhook_secret=webhooks.new_secret())
    rotated = first.with_new_webhook_secret(webhooks.new_secret(), grace=60, now=1000.0)
    assert rotated.webhook_secrets(1059.0) == [rotated.webhook_secret, first.webhook_secret]
    assert rotated.webhook_secrets(1060.0) == [rotated.webhook_secret]
    assert Account("b", "h").with_new_webhook_secret("whsec_x", 60, 0.0).webhook_secrets(1.0) == ["whsec_x"]


def test_signing_secrets_stay_out_of_reprs_and_public_views() -> None:
    account = Account("a", "h", webhook_secret=webhooks.new_secret()).with_new_webhook_secret(
        webhooks.new_secret(), 60, time.time()
    )
    assert "whsec_" not in repr(account)
    assert "whsec_" not in json.dumps(account.public())
    assert account.public()["has_webhook_secret"] is True


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = time.time()
    assert retry_after("7", now) == 7.0
    assert retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1.5)
    assert retry_after(formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None
