"""The one way tasks read input URLs: safe against SSRF, bounded in size and time.

- http and https only; the host is resolved here and the connection goes to the
  address that was checked (no DNS-rebinding gap), with Host and TLS SNI kept.
- Private, loopback, link-local, multicast, reserved and unspecified addresses are
  refused, IPv4 and IPv6 alike, including IPv4-mapped, 6to4 and Teredo forms and the
  decimal or octal spellings the resolver accepts. ``allow_private_urls`` lifts this.
- Redirects are followed by hand, each hop checked again, at most ``fetch_max_redirects``.
- URLs of this service's own outputs are read from storage directly.
- :meth:`Fetcher.open` reads a remote file by HTTP range requests instead of downloading
  it (:class:`RangedFile`), for readers that seek: every request takes the same guarded
  path, redirects included.
Every failure is a ``CouldNotDownloadError`` that says why.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import re
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from dragon import metrics
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
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
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
    content: bytes | Iterator[bytes] | None = None,
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
        try:
            fetched = self._download(url, dest, max_bytes, truncate)
        except CouldNotDownloadError:
            metrics.fetch_failed()
            raise
        metrics.fetched(fetched.size)
        return fetched

    def _download(self, url: str, dest: Path, max_bytes: int | None, truncate: bool) -> Fetched:
        limit = self.limit(max_bytes)
        deadline = time.monotonic() + self.settings.fetch_total_timeout
        if not isinstance(url, str) or not url:
            raise CouldNotDownloadError("the URL is empty")
        with self.client() as client, _refusals(), self.answer(client, url, own=self.read_own) as (current, answer):
            if not isinstance(answer, httpx.Response):
                return replace(_write(dest, answer, limit, deadline, url, None, truncate), url=current)
            declared = answer.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit and not truncate:
                raise CouldNotDownloadError(f"{url}: the file is larger than the limit of {limit} bytes")
            content_type = answer.headers.get("content-type")
            return replace(_write(dest, answer.iter_bytes(), limit, deadline, url, content_type, truncate), url=current)

    def open(self, url: str, max_bytes: int | None = None) -> RangedFile | None:
        """``url`` as a seekable file read by range, or None where that is not possible
        here (the origin ignores or refuses ranges, does not say the size, the file is
        empty, or the URL is not one to connect to: a download decides those, and reads
        this service's own outputs from storage)."""
        if not isinstance(url, str) or not url:
            return None
        client = self.client()
        try:
            with self.answer(client, url, {"Range": f"bytes=0-{BLOCK - 1}"}, accept=(416,)) as (current, answer):
                assert isinstance(answer, httpx.Response)
                size = ranged_size(answer)
                if size is None or size == 0:
                    client.close()
                    return None
                ranged = RangedFile(self, client, current, size, self.limit(max_bytes))
                ranged.receive(0, answer)
                return ranged
        except UnsafeURLError:
            client.close()
            return None
        except BaseException:
            client.close()
            raise

    def client(self) -> httpx.Client:
        timeout = httpx.Timeout(
            connect=self.settings.fetch_connect_timeout,
            read=self.settings.fetch_read_timeout,
            write=self.settings.fetch_read_timeout,
            pool=self.settings.fetch_connect_timeout,
        )
        return httpx.Client(timeout=timeout, follow_redirects=False, verify=tls_context())

    @contextmanager
    def answer(
        self,
        client: httpx.Client,
        url: str,
        headers: dict[str, str] | None = None,
        own: Callable[[str], Iterable[bytes] | None] | None = None,
        accept: tuple[int, ...] = (),
    ) -> Iterator[tuple[str, httpx.Response | Iterable[bytes]]]:
        """(final URL, streamed response) after following redirects by hand, every hop
        resolved and checked again; or our own output's bytes where ``own`` knows the
        URL. HTTP errors other than ``accept`` end in CouldNotDownloadError; a URL the
        guard refuses raises UnsafeURLError."""
        current = url
        for _ in range(self.settings.fetch_max_redirects + 1):
            content = own(current) if own else None
            if content is not None:
                yield current, content
                return
            request = pinned_request(client, "GET", current, self.settings.allow_private_urls, headers)
            with _Response(client, request, url) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code >= 400 and response.status_code not in accept:
                    raise CouldNotDownloadError(f"{url}: the server answered HTTP {response.status_code}")
                yield current, response
                return
        raise CouldNotDownloadError(f"{url}: more than {self.settings.fetch_max_redirects} redirects")

    def limit(self, max_bytes: int | None) -> int:
        return min(max_bytes or self.settings.fetch_max_bytes, self.settings.fetch_max_bytes)


BLOCK = 256 * 1024  # bytes per block of a ranged read
MAX_RUN = 16  # blocks per request while reading forward: up to 4 MiB
CACHED_BLOCKS = 64  # 16 MiB of a file kept in memory
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def ranged_size(response: httpx.Response) -> int | None:
    """The file's size from a 206's Content-Range (or a 416's ``*/size``); None when
    the answer is not a range (a 200 carries the whole file)."""
    if response.status_code == 416:
        return 0 if response.headers.get("content-range", "").endswith("/0") else None
    found = CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    return int(found.group(3)) if response.status_code == 206 and found else None


class RangedFile(io.RawIOBase):
    """A remote file read by HTTP range requests, for readers that seek (PyAV, Pillow).

    Blocks of 256 KiB are fetched when first read, in runs that double up to 4 MiB
    while reading goes forward, and the last 64 blocks are kept. Every request goes the
    guarded way a download does (address checked, redirects followed by hand); each must
    end within ``fetch_read_timeout``, all of them within ``fetch_total_timeout``, and
    together they may carry at most ``limit`` bytes. ``transferred`` counts them.
    """

    def __init__(self, fetcher: Fetcher, client: httpx.Client, url: str, size: int, limit: int):
        super().__init__()
        self.fetcher, self.client, self.url, self.size, self.limit = fetcher, client, url, size, limit
        self.deadline = time.monotonic() + fetcher.settings.fetch_total_timeout
        self.transferred = 0
        self.requests = 0
        self._position = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._run = 1
        self._next = 0  # the block after the last run fetched: reading on from there is sequential

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        """As many bytes as asked for, short only at the end of the file."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self.size:
            index, skip = divmod(self._position, BLOCK)
            data = self._block(index)
            count = min(len(view) - done, len(data) - skip)
            view[done : done + count] = data[skip : skip + count]
            done += count
            self._position += count
        return done

    def close(self) -> None:
        if not self.closed:
            self.client.close()
            self._blocks.clear()
        super().close()

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        self._run = min(2 * self._run, MAX_RUN) if index == self._next else 1
        last = min(index + self._run, -(-self.size // BLOCK)) - 1
        self._next = last + 1
        start, end = index * BLOCK, min((last + 1) * BLOCK, self.size) - 1
        with _refusals(), self.fetcher.answer(self.client, self.url, {"Range": f"bytes={start}-{end}"}) as (_, answer):
            assert isinstance(answer, httpx.Response)
            self.receive(start, answer)
        return self._blocks[index]

    def receive(self, start: int, response: httpx.Response) -> None:
        """Keep the blocks of a 206 answer that begins at ``start``."""
        found = CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if response.status_code != 206 or not found or int(found.group(1)) != start:
            raise CouldNotDownloadError(f"{self.url}: the server stopped answering the byte ranges asked for")
        expected = int(found.group(2)) - start + 1
        deadline = min(self.deadline, time.monotonic() + self.fetcher.settings.fetch_read_timeout)
        data = bytearray()
        for chunk in _guarded(response.iter_bytes(), self.url):
            data += chunk
            self.transferred += len(chunk)
            if self.transferred > self.limit:
                raise CouldNotDownloadError(f"{self.url}: reading it took more than the limit of {self.limit} bytes")
            if time.monotonic() > deadline:
                raise CouldNotDownloadError(f"{self.url}: a read took too long")
        if len(data) != expected:
            raise CouldNotDownloadError(f"{self.url}: the server sent {len(data)} bytes of a {expected}-byte range")
        self.requests += 1
        metrics.fetched(len(data))
        for offset in range(0, len(data), BLOCK):
            self._blocks[(start + offset) // BLOCK] = bytes(data[offset : offset + BLOCK])
            self._blocks.move_to_end((start + offset) // BLOCK)
        while len(self._blocks) > CACHED_BLOCKS:
            self._blocks.popitem(last=False)


@contextmanager
def _refusals() -> Iterator[None]:
    """The guard's refusals as the CouldNotDownloadError a task ends in."""
    try:
        yield
    except UnsafeURLError as exc:
        raise CouldNotDownloadError(str(exc)) from None


class _Response:
    """Sends the request on enter; network errors become CouldNotDownloadError."""

    def __init__(self, client: httpx.Client, request: httpx.Request, url: str):
        self.client, self.request, self.url = client, request, url
        self.response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        try:
            self.response = self.client.send(self.request, stream=True)
        except httpx.TimeoutException:
            raise CouldNotDownloadError(f"{self.url}: timed out connecting or waiting for an answer") from None
        except httpx.HTTPError as exc:
            raise CouldNotDownloadError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        return self.response

    def __exit__(self, *_: object) -> None:
        if self.response is not None:
            self.response.close()


def _write(
    dest: Path,
    chunks: Iterable[bytes],
    limit: int,
    deadline: float,
    url: str,
    content_type: str | None,
    truncate: bool = False,
) -> Fetched:
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
