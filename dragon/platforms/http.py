"""What the platform clients share: SSRF-pinned requests, retries, chunks, scrubbing.

Every request goes through :func:`dragon.storage.fetch.pinned_request`, like every other
outbound request of the service, so an upload link a platform hands back cannot point
the worker at private addresses. Messages that reach a status are scrubbed of the
task's credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from dragon.config import Settings
from dragon.errors import TaskError, UploadError
from dragon.storage.fetch import UnsafeURLError, pinned_request, tls_context

RETRIABLE = (429, 500, 502, 503, 504)
Progress = Callable[[float], None]


class Interrupted(Exception):
    """A request that broke off or got a transient answer: resume, do not restart."""


class Platform:
    def __init__(self, settings: Settings, name: str, secrets: Sequence[str | None]):
        self.settings = settings
        self.name = name
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.fetch_read_timeout * 4, connect=settings.fetch_connect_timeout),
            verify=tls_context(),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        **options: Any,
    ) -> httpx.Response:
        """One request; a dropped connection or a 429/5xx answer raises Interrupted."""
        target = str(httpx.URL(url).copy_merge_params(params)) if params else url
        try:
            request = pinned_request(
                self._client, method, target, self.settings.allow_private_urls, headers, content, **options
            )
        except UnsafeURLError as exc:
            raise UploadError(self.scrub(f"{self.name}: the upload address is not allowed: {exc}")) from None
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            raise Interrupted(type(exc).__name__) from None
        if response.status_code in RETRIABLE:
            raise Interrupted(f"HTTP {response.status_code}")
        return response

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request that is safe to repeat (no partial upload state): retried with back-off."""
        for attempt in range(self.settings.upload_resumes + 1):
            try:
                return self.send(method, url, **kwargs)
            except Interrupted as exc:
                if attempt == self.settings.upload_resumes:
                    raise UploadError(f"{self.name}: the platform did not answer ({exc})") from None
                time.sleep(min(8.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    def resumed(self, count: int, why: Interrupted) -> int:
        """Counts one resume; past the allowed number the upload fails."""
        if count >= self.settings.upload_resumes:
            raise UploadError(f"{self.name}: the upload kept breaking off ({why})")
        time.sleep(min(8.0, 0.25 * 2**count))
        return count + 1

    def fail(self, error: type[TaskError], message: str) -> TaskError:
        return error(self.scrub(f"{self.name}: {message}"))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text[:500]


def read_chunk(path: Path, offset: int, size: int) -> bytes:
    """At most ``size`` bytes of ``path`` from ``offset``: memory holds one chunk."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def range_end(response: httpx.Response) -> int:
    """The next offset from a "Range: bytes=0-N" header (none: nothing received yet)."""
    value = response.headers.get("range", "")
    try:
        return int(value.rsplit("-", 1)[1]) + 1 if value else 0
    except (IndexError, ValueError):
        return 0


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
