"""Output storage and the Storage API, through the real service."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Api, DragonProcess
from tests.support.servers import Origin, SeaweedS3


def copy_task(url: str | None = None, **params: Any) -> dict[str, Any]:
    return {"task_name": "test.copy", **({"url": url} if url else {}), **params}


@pytest.fixture(scope="module")
def bob(dragon: DragonProcess) -> Api:
    return Api(dragon.url, dragon.cli("accounts", "create", "bob")["secret"])


def _files(api: Api, path: str = "", **params: Any) -> dict[str, Any]:
    r = api.http.get(f"/v2/storage/files/{path}", params={"secret": api.secret, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _delete(api: Api, path: str = "", **body: Any) -> dict[str, Any]:
    r = api.http.request("DELETE", f"/v2/storage/files/{path}", json={"secret": api.secret, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_output_url_serves_the_stored_bytes_with_type_and_ranges(api: Api, origin: Origin) -> None:
    data = os.urandom(300_000)
    [status] = api.create(copy_task(origin.add("in.bin", data), extension="mp4", content_type="video/mp4"), block=True)
    assert status["status"] == "success", status
    url = status["result"]["output"]
    key = status["key"]
    assert url.startswith(api.url + "/storage/persistent/alice/" + key + "/dragon-test.copy-")
    assert url.endswith(".mp4") and len(url.rsplit("/", 1)[1]) == len("dragon-test.copy-XXXXXX.mp4")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "video/mp4"
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    # The scratch directory is gone once the task has ended.
    assert not os.path.exists(status["result"]["scratch"])


def test_outputs_chain_into_the_next_task_without_http(api: Api, origin: Origin) -> None:
    [first] = api.create(copy_task(origin.add("chain.bin", b"chained bytes")), block=True)
    origin_file = origin.root / "chain.bin"
    origin_file.unlink()  # the second task cannot be reading from the origin
    [second] = api.create(copy_task(first["result"]["output"]), block=True)
    assert second["status"] == "success", second
    assert httpx.get(second["result"]["output"]).content == b"chained bytes"


def test_listing_recursive_listing_and_usage(api: Api) -> None:
    statuses = api.create([copy_task(text="a" * 10), copy_task(text="b" * 20)], block=True)
    keys = sorted(s["key"] for s in statuses)
    root = _files(api)
    assert root["files"] == []
    assert {f"{k}/" for k in keys} <= set(root["directories"])
    deep = _files(api, recursive="true")
    mine = [f for f in deep["files"] if f["name"].split("/")[0] in keys]
    assert sorted(f["size"] for f in mine) == [10, 20]
    assert all(f["name"].split("/")[1].startswith("dragon-test.copy-") for f in mine)
    assert all(f["last_modified"].endswith("Z") and len(f["last_modified"]) == 24 for f in mine)
    assert deep["usage"] == root["usage"] == sum(f["size"] for f in deep["files"])
    one = _files(api, keys[0])
    assert one["directories"] == [] and len(one["files"]) == 1
    assert one["usage"] == one["files"][0]["size"]
    single = _files(api, f"{keys[0]}/{one['files'][0]['name']}")
    assert single["files"] == one["files"]


def test_delete_by_path_directory_urls_dates_and_dry_run(api: Api) -> None:
    statuses = api.create([copy_task(text=str(i) * 100) for i in range(4)], block=True)
    keys = [s["key"] for s in statuses]
    urls = [s["result"]["output"] for s in statuses]
    file_name = urls[0].rsplit("/", 1)[1]

    dry = _delete(api, f"{keys[0]}/{file_name}", dry_run=True)
    assert dry["deleted"] == [f"{keys[0]}/{file_name}"] and dry["freed"] == 100
    assert httpx.get(urls[0]).status_code == 200

    gone = _delete(api, f"{keys[0]}/{file_name}")
    assert gone["deleted"] == [f"{keys[0]}/{file_name}"] and gone["freed"] == 100
    assert httpx.get(urls[0]).status_code == 404

    assert _delete(api, keys[1])["deleted"] == [f"{keys[1]}/{urls[1].rsplit('/', 1)[1]}"]
    by_url = _delete(api, "", urls=[urls[2]])
    assert by_url["deleted"] == [f"{keys[2]}/{urls[2].rsplit('/', 1)[1]}"]
    assert by_url["usage"] == _files(api)["usage"]

    future = _delete(api, keys[3], **{"from": "2999-01-01T00:00:00"})
    assert future["deleted"] == []
    assert _delete(api, keys[3], max_age=1)["deleted"] == []
    assert len(_delete(api, keys[3], to="2999-01-01T00:00:00", dry_run=True)["deleted"]) == 1


def test_a_selection_that_selects_nothing_deletes_nothing(api: Api, origin: Origin) -> None:
    [status] = api.create(copy_task(text="keep me"), block=True)
    url, key = status["result"]["output"], status["key"]
    usage = _files(api)["usage"]
    nothing: list[dict[str, Any]] = [
        {"urls": []},  # given, so path/from/to/max_age are ignored: and it names no file
        {"urls": [], "max_age": 0},
        {"urls": [origin.url + "/not-ours.bin", api.url + "/storage/persistent/someone-else/x/y.bin"]},
        {"from": "2999-01-01T00:00:00"},
        {"to": "1999-01-01T00:00:00"},
        {"max_age": 36500},
    ]
    for body in nothing:
        answer = _delete(api, "", **body)
        assert answer["deleted"] == [] and answer["freed"] == 0, body
    assert _delete(api, "NOSUCHDIRECTORY")["deleted"] == []
    assert _delete(api, f"{key}/no-such-file.txt")["deleted"] == []
    assert httpx.get(url).status_code == 200
    assert _files(api)["usage"] == usage


def test_expiration_is_set_and_enforced_by_the_sweeper(dragon: DragonProcess, bob: Api) -> None:
    r = bob.http.get("/v2/storage/expiration", params={"secret": bob.secret})
    assert r.status_code == 200 and r.json() == 0
    [old, new] = bob.create([copy_task(text="old"), copy_task(text="new")], block=True)
    path = dragon.data_dir / "files" / old["result"]["output"].split("/storage/", 1)[1]
    three_days_ago = time.time() - 3 * 86400
    os.utime(path, (three_days_ago, three_days_ago))
    r = bob.http.post("/v2/storage/expiration", json={"secret": bob.secret, "days": 2})
    assert r.status_code == 200 and r.json() == 2
    assert bob.http.get("/v2/storage/expiration", params={"secret": bob.secret}).json() == 2
    deadline = time.monotonic() + 30
    while httpx.get(old["result"]["output"]).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert httpx.get(old["result"]["output"]).status_code == 404
    assert httpx.get(new["result"]["output"]).status_code == 200
    bad = bob.http.post("/v2/storage/expiration", json={"secret": bob.secret, "days": -1})
    assert bad.status_code == 400


def test_volatile_files_expire_and_stay_out_of_the_listing(api: Api) -> None:
    [status] = api.create(copy_task(text="short-lived", task_store={"type": "volatile"}), block=True)
    url = status["result"]["output"]
    assert "/storage/volatile/alice/" in url
    assert httpx.get(url).content == b"short-lived"
    assert status["key"] + "/" not in _files(api)["directories"]
    deadline = time.monotonic() + 40  # the test service keeps volatile files ~9 s
    while httpx.get(url).status_code == 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert httpx.get(url).status_code == 404


def test_accounts_only_see_and_delete_their_own_files(api: Api, bob: Api) -> None:
    [mine] = api.create(copy_task(text="alice's"), block=True)
    key, url = mine["key"], mine["result"]["output"]
    listing = _files(bob, recursive="true")
    assert all(not f["name"].startswith(key) for f in listing["files"])
    r = bob.http.get(f"/v2/storage/files/{key}", params={"secret": bob.secret})
    assert r.json()["files"] == []
    assert _delete(bob, "", urls=[url])["deleted"] == []
    assert _delete(bob, key)["deleted"] == []
    assert httpx.get(url).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["../bob", "..%2Fbob", "%2e%2e/bob", "%252e%252e/bob", "KEY/../../bob", "a\\..\\b", "%00"],
)
def test_storage_paths_cannot_escape_the_account(api: Api, path: str) -> None:
    r = api.http.get(f"/v2/storage/files/{path}", params={"secret": api.secret})
    assert r.status_code in (400, 404), r.text
    r = api.http.request("DELETE", f"/v2/storage/files/{path}", json={"secret": api.secret})
    assert r.status_code in (400, 404), r.text


@pytest.mark.parametrize(
    "path", ["../journal.sqlite3", "..%2F..%2Fjournal.sqlite3", "persistent/../../journal.sqlite3"]
)
def test_file_urls_cannot_escape_the_storage_directory(api: Api, path: str) -> None:
    assert api.http.get(f"/storage/{path}").status_code == 404


def test_storage_api_needs_the_secret(api: Api, account: dict) -> None:
    assert api.http.get("/v2/storage/files/").status_code == 401
    r = api.http.get("/v2/storage/files/", params={"secret": "WRONG"})
    assert r.status_code == 401
    r = api.http.get(
        "/v2/storage/expiration",
        headers={"Authorization": f"Api-Key {account['api_key']}", "Referer": "https://app.example.com/"},
    )
    assert r.status_code == 401
    r = api.http.request(
        "DELETE", "/v2/storage/files/", headers={"Authorization": f"Secret {api.secret}"}, json={"dry_run": True}
    )
    assert r.status_code == 200


def test_task_store_is_validated(api: Api) -> None:
    [bad_type, no_url, youtube] = api.create(
        [
            copy_task(text="x", task_store={"type": "dropbox"}),
            copy_task(text="x", task_store={"type": "s3_signed"}),
            copy_task(text="x", task_store={"type": "youtube", "access_token": "t"}),
        ],
        block=True,
    )
    assert list(bad_type["error"]["parameters"]) == ["task_store"]
    assert no_url["error"] == {"parameters": {"task_store.url": ["this field is required"]}}
    assert set(youtube["error"]["parameters"]) == {"task_store.developer_key", "task_store.title"}


def test_s3_signed_store_puts_the_main_output_to_the_signed_url(api: Api, s3: SeaweedS3) -> None:
    signed = s3.client.generate_presigned_url(
        "put_object", Params={"Bucket": s3.bucket, "Key": "client/out.bin"}, ExpiresIn=600
    )
    [status] = api.create(
        copy_task(text="to the client's bucket", extra_file=True, task_store={"type": "s3_signed", "url": signed}),
        block=True,
    )
    assert status["status"] == "success", status.get("error")
    assert status["result"]["output"] == signed.split("?")[0]
    assert s3.client.get_object(Bucket=s3.bucket, Key="client/out.bin")["Body"].read() == b"to the client's bucket"
    assert "/storage/volatile/alice/" in status["result"]["extra"]
    # A signed URL that S3 refuses ends the task in a clear error.
    [refused] = api.create(
        copy_task(text="x", task_store={"type": "s3_signed", "url": signed.replace("Signature=", "Signature=00")}),
        block=True,
    )
    assert refused["error"].startswith("StorageError: the signed URL refused the upload")
