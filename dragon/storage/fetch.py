"""The one way tasks read input URLs: safe against SSRF, bounded in size and time.

- http and https only; the host is resolved here and the connection goes to the
  address that was checked (no DNS-rebinding gap), with Host and TLS SNI kept.
- Private, loopback, link-local, multicast, reserved and unspecified addresses are
  refused, IPv4 and IPv6 alike, including IPv4-mapped, 6to4 and Teredo forms and the
  decimal or octal spellings the resolver accepts. ``allow_private_urls`` lifts this.
- Redirects are followed by hand, each hop checked again, at most ``fetch_max_redirects``.
- URLs of this service's own outputs are read from storage directly.
Every failure is a ``CouldNotDownloadError`` that says why.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from dragon.config import Settings
from dragon.errors import CouldNotDownloadError

REDIRECTS = (301, 302, 303, 307, 308)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    content_type: str | None
    truncated: bool = False  # only when the caller asked for truncation over the limit
    url: str = ""  # where the content came from, after redirects


def is_public(ip: Address) -> bool:
    """Whether ``ip`` is a globally routable unicast address (embedded IPv4 included)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public(embedded)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class UnsafeURLError(ValueError):
    """A URL this service will not connect to, and why."""


def resolve(host: str, port: int, allow_private: bool) -> Address:
    """The address to connect to: the first resolved one that may be reached."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"cannot resolve {host!r}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        if allow_private or is_public(ip):
            return ip
    raise UnsafeURLError(
        f"{host!r} resolves to a non-public address ({addresses[0]}), which is not allowed; a local file "
        "can be sent with `dragon upload FILE` (its URL is a task input), and a service for local development "
        "can allow such addresses (`dragon serve --allow-private-urls`, or DRAGON_ALLOW_PRIVATE_URLS=1)"
    )


def pinned_request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    url: str,
    allow_private: bool,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    **options: Any,
) -> httpx.Request:
    """A request that connects to the address checked here, not to whatever a second
    DNS lookup would say; Host and TLS SNI keep the URL's name. Redirects are the
    caller's to check."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"{url[:200]}: only http and https URLs are supported")
    if not parts.hostname:
        raise UnsafeURLError(f"{url[:200]}: the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURLError(f"{url[:200]}: invalid port") from None
    ip = resolve(parts.hostname, port, allow_private)
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return client.build_request(
        method,
        target,
        headers={"Host": host_header, "User-Agent": "dragon/1", **(headers or {})},
        content=content,
        extensions={"sni_hostname": parts.hostname} if parts.scheme == "https" else {},
        **options,  # data=, files=, json= for platform APIs
    )


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The CA bundle takes ~17 ms to load: once per process, shared by every client."""
    return httpx.create_ssl_context()


class Fetcher:
    def __init__(self, settings: Settings, read_own: Callable[[str], Iterable[bytes] | None] | None = None):
        self.settings = settings
        self.read_own = read_own

    def fetch(self, url: str, dest: Path, max_bytes: int | None = None, truncate: bool = False) -> Fetched:
        """Download ``url`` to ``dest``. Over the size limit it is a CouldNotDownloadError,
        or with ``truncate`` the first ``max_bytes`` (for inputs read from the start)."""
        limit = min(max_bytes or self.settings.fetch_max_bytes, self.settings.fetch_max_bytes)
        deadline = time.monotonic() + self.settings.fetch_total_timeout
        if not isinstance(url, str) or not url:
            raise CouldNotDownloadError("the URL is empty")
        current = url
        for _ in range(self.settings.fetch_max_redirects + 1):
            own = self.read_own(current) if self.read_own else None
            if own is not None:
                return replace(_write(dest, own, limit, deadline, url, None, truncate), url=current)
            with self._get(current) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise CouldNotDownloadError(f"{url}: the server answered HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit and not truncate:
                    raise CouldNotDownloadError(f"{url}: the file is larger than the limit of {limit} bytes")
                content_type = response.headers.get("content-type")
                fetched = _write(dest, response.iter_bytes(), limit, deadline, url, content_type, truncate)
                return replace(fetched, url=current)
        raise CouldNotDownloadError(f"{url}: more than {self.settings.fetch_max_redirects} redirects")

    def _get(self, url: str) -> _Response:
        timeout = httpx.Timeout(
            connect=self.settings.fetch_connect_timeout,
            read=self.settings.fetch_read_timeout,
            write=self.settings.fetch_read_timeout,
            pool=self.settings.fetch_connect_timeout,
        )
        client = httpx.Client(timeout=timeout, follow_redirects=False, verify=tls_context())
        try:
            request = pinned_request(client, "GET", url, self.settings.allow_private_urls)
        except UnsafeURLError as exc:
            client.close()
            raise CouldNotDownloadError(str(exc)) from None
        return _Response(client, request, url)


class _Response:
    """Sends the request on enter; network errors become CouldNotDownloadError."""

    def __init__(self, client: httpx.Client, request: httpx.Request, url: str):
        self.client, self.request, self.url = client, request, url
        self.response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        try:
            self.response = self.client.send(self.request, stream=True)
        except httpx.TimeoutException:
            self.client.close()
            raise CouldNotDownloadError(f"{self.url}: timed out connecting or waiting for an answer") from None
        except httpx.HTTPError as exc:
            self.client.close()
            raise CouldNotDownloadError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        return self.response

    def __exit__(self, *_: object) -> None:
        if self.response is not None:
            self.response.close()
        self.client.close()


def _write(dest: Path, chunks: Iterable[bytes], limit: int, deadline: float, url: str, content_type: str | None,
           truncate: bool = False) -> Fetched:
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(dest, "wb") as out:
            for chunk in _guarded(chunks, url):
                if size + len(chunk) > limit and truncate:
                    out.write(chunk[: limit - size])
                    return Fetched(dest, limit, content_type, truncated=True)
                size += len(chunk)
                if size > limit:
                    raise CouldNotDownloadError(f"{url}: the file is larger than the limit of {limit} bytes")
                if time.monotonic() > deadline:
                    raise CouldNotDownloadError(f"{url}: the download took too long")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Fetched(dest, size, content_type)


def _guarded(chunks: Iterable[bytes], url: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except httpx.TimeoutException:
        raise CouldNotDownloadError(f"{url}: the server stopped sending data") from None
    except httpx.HTTPError as exc:
        raise CouldNotDownloadError(f"{url}: the download broke off ({type(exc).__name__})") from None
    except FileNotFoundError:
        raise CouldNotDownloadError(f"{url}: no such stored file") from None
