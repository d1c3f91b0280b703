"""Input fetching: limits and refusals, the SSRF guard, and the S3 backend end to end.

The session service lifts the private-address guard (its inputs are on loopback); the
`guarded` service runs with the guard on, as in production, and stores on S3.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from dragon.config import Settings
from dragon.storage.fetch import CouldNotDownloadError, Fetcher
from tests.conftest import Api
from tests.support.servers import Origin, SeaweedS3


def _error_of(api: Api, url: str, **params: Any) -> str:
    [status] = api.create({"task_name": "test.copy", "url": url, **params}, block=True)
    assert status["status"] == "error", status
    return status["error"]


def test_larger_than_allowed_is_refused(api: Api, origin: Origin) -> None:
    url = origin.add("big.bin", os.urandom(200_000))
    assert "larger than the limit of 100000 bytes" in _error_of(api, url, max_bytes=100_000)
    assert _error_of(api, f"{origin.url}/liar").startswith("CouldNotDownloadError: ")


def test_slow_input_is_refused_on_time(api: Api, origin: Origin) -> None:
    started = time.monotonic()
    error = _error_of(api, f"{origin.url}/slow")
    assert error.startswith("CouldNotDownloadError: ") and "took too long" in error
    assert time.monotonic() - started < 20  # the test service allows 6 s per download


@pytest.mark.parametrize(
    "path, reason",
    [("/loop", "more than 5 redirects"), ("/missing.bin", "answered HTTP 404")],
)
def test_redirect_loops_and_http_errors_say_why(api: Api, origin: Origin, path: str, reason: str) -> None:
    error = _error_of(api, origin.url + path)
    assert error.startswith("CouldNotDownloadError: ") and reason in error


def test_redirects_are_followed(api: Api, origin: Origin) -> None:
    target = origin.add("target.bin", b"at the end of a redirect")
    [status] = api.create({"task_name": "test.copy", "url": f"{origin.url}/redirect?to={target}"}, block=True)
    assert httpx.get(status["result"]["output"]).content == b"at the end of a redirect"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "http:///nohost", ""]
)
def test_only_http_and_https_are_fetched(api: Api, url: str) -> None:
    assert _error_of(api, url).startswith("CouldNotDownloadError: ")


SSRF = [
    "http://127.0.0.1:{port}/x",
    "http://localhost:{port}/x",
    "http://[::1]:{port}/x",
    "http://0.0.0.0:{port}/x",
    "http://2130706433:{port}/x",  # 127.0.0.1 in decimal
    "http://0177.0.0.1:{port}/x",  # in octal
    "http://0x7f.0.0.1:{port}/x",  # in hex
    "http://[::ffff:127.0.0.1]:{port}/x",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]:{port}/x",
    "http://[2002:7f00:1::]:{port}/x",  # 6to4 of 127.0.0.1
    "http://10.0.0.1/x",
    "http://172.16.5.4/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/x",  # carrier-grade NAT
    "http://[fe80::1]/x",
    "http://[fc00::1]/x",
    "http://224.0.0.1/x",
    "http://[ff02::1]/x",
    "http://240.0.0.1/x",
    "http://{origin}/redirect?to=http://127.0.0.1/",
]


@pytest.mark.parametrize("template", SSRF)
def test_private_addresses_are_refused_by_default(guarded: Api, origin: Origin, template: str) -> None:
    port = origin.url.rsplit(":", 1)[1]
    url = template.format(port=port, origin=origin.url.split("//")[1])
    error = _error_of(guarded, url)
    assert error.startswith("CouldNotDownloadError: ")
    assert "not allowed" in error and "--allow-private-urls" in error  # says what to do about it


def test_s3_backend_stores_lists_chains_and_deletes(guarded: Api, s3: SeaweedS3) -> None:
    [first] = guarded.create(
        {"task_name": "test.copy", "text": "on S3", "extension": "txt", "content_type": "text/plain"}, block=True
    )
    assert first["status"] == "success", first.get("error")
    url = first["result"]["output"]
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/outputs/persistent/carol/{first['key']}/dragon-test.copy-")
    got = httpx.get(url)
    assert got.content == b"on S3" and got.headers["content-type"] == "text/plain"
    # Our own output URL is read from storage directly: the loopback guard does not apply.
    [second] = guarded.create({"task_name": "test.copy", "url": url}, block=True)
    assert second["status"] == "success", second.get("error")
    listing = guarded.http.get("/v2/storage/files/", params={"secret": guarded.secret, "recursive": "true"}).json()
    assert {f["name"].split("/")[0] for f in listing["files"]} == {first["key"], second["key"]}
    assert listing["usage"] == 10
    deleted = guarded.http.request(
        "DELETE", f"/v2/storage/files/{first['key']}", json={"secret": guarded.secret}
    ).json()
    assert deleted["freed"] == 5 and deleted["usage"] == 5
    assert httpx.get(url).status_code == 404


def test_s3_backend_sweeps_volatile_files(guarded: Api, s3: SeaweedS3) -> None:
    [status] = guarded.create(
        {"task_name": "test.copy", "text": "brief", "task_store": {"type": "volatile"}}, block=True
    )
    key = status["result"]["output"].split(f"/{s3.bucket}/", 1)[1].split("?")[0]
    assert key.startswith("outputs/volatile/carol/")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=key).get("KeyCount", 0)
        if listed == 0:
            break
        time.sleep(1)
    assert s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=key).get("KeyCount", 0) == 0


# Reading by range (Fetcher.open): what video.info/thumb/strip, audio.info and image.info use.

LOOPBACK_ALLOWED = Settings(allow_private_urls=True)


def test_a_ranged_read_fetches_only_the_blocks_read(origin: Origin) -> None:
    data = os.urandom(3_000_000)
    url = origin.add("ranged.bin", data)
    remote = Fetcher(LOOPBACK_ALLOWED).open(url)
    assert remote is not None and remote.size == len(data)
    with remote:
        remote.seek(2_000_000)
        assert remote.read(1000) == data[2_000_000:2_001_000]
        remote.seek(-10, os.SEEK_END)
        assert remote.read() == data[-10:]
        assert remote.transferred < 1_000_000  # the first block, and the blocks read
    assert all(r.startswith("bytes=") for r in origin.ranges["/ranged.bin"])


def test_a_redirected_ranged_input_is_read_at_its_end(origin: Origin) -> None:
    data = os.urandom(600_000)
    target = origin.add("redirected.bin", data)
    with Fetcher(LOOPBACK_ALLOWED).open(f"{origin.url}/redirect?to={target}") as remote:  # type: ignore[union-attr]
        assert remote.url == target
        remote.seek(500_000)
        assert remote.read(100) == data[500_000:500_100]


def test_every_range_request_passes_the_guard(origin: Origin) -> None:
    url = origin.add("guarded.bin", os.urandom(2_000_000))
    fetcher = Fetcher(LOOPBACK_ALLOWED)
    with fetcher.open(url) as remote:  # type: ignore[union-attr]
        fetcher.settings = Settings(allow_private_urls=False)  # as if the name now resolved to loopback
        remote.seek(1_500_000)
        with pytest.raises(CouldNotDownloadError, match="not allowed"):
            remote.read(10)
    assert Fetcher(Settings(allow_private_urls=False)).open(url) is None  # refused: the download says why


def test_ranged_reads_are_bounded_in_bytes_and_time(origin: Origin) -> None:
    url = origin.add("bounded.bin", os.urandom(2_000_000))
    with Fetcher(LOOPBACK_ALLOWED).open(url, max_bytes=600_000) as remote:  # type: ignore[union-attr]
        with pytest.raises(CouldNotDownloadError, match="more than the limit of 600000 bytes"):
            remote.read()
    started = time.monotonic()
    with pytest.raises(CouldNotDownloadError, match="took too long"):
        Fetcher(Settings(allow_private_urls=True, fetch_read_timeout=1)).open(f"{url}?trickle=1")
    assert time.monotonic() - started < 5


def test_no_range_support_or_an_empty_file_means_a_download(origin: Origin) -> None:
    url = origin.add("plain.bin", os.urandom(10_000))
    assert Fetcher(LOOPBACK_ALLOWED).open(f"{url}?ranges=no") is None
    assert Fetcher(LOOPBACK_ALLOWED).open(origin.add("nothing.bin", b"")) is None
    with pytest.raises(CouldNotDownloadError, match="HTTP 404"):
        Fetcher(LOOPBACK_ALLOWED).open(f"{origin.url}/absent.bin")


@pytest.mark.parametrize("task_name", ["video.info", "video.thumb", "audio.info", "image.info"])
@pytest.mark.parametrize(
    "template", ["http://127.0.0.1:{port}/x", "http://{origin}/redirect?to=http://169.254.169.254/"]
)
def test_tasks_reading_by_range_are_guarded(guarded: Api, origin: Origin, task_name: str, template: str) -> None:
    port = origin.url.rsplit(":", 1)[1]
    url = template.format(port=port, origin=origin.url.split("//")[1])
    [status] = guarded.create({"task_name": task_name, "url": url}, block=True)
    assert status["status"] == "error" and status["error"].startswith("CouldNotDownloadError: ")
    assert "not allowed" in status["error"]
