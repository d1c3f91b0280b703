"""Output files answered while expiry or a delete removes them: the whole file or a 404,
never an answer cut after its headers. A bare Starlette app stands in for the API route."""

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from dragon.serve.files import OpenFileResponse, open_regular_file


def _client(path: Path) -> TestClient:
    async def route(request: Request) -> Response:
        file = open_regular_file(path)
        if file is None:
            return PlainTextResponse("Not Found", 404)
        path.unlink()  # removed after the file was opened, before any byte is sent
        return OpenFileResponse(file, media_type="application/octet-stream")

    return TestClient(Starlette(routes=[Route("/", route, methods=["GET", "HEAD"])]))


def test_a_file_removed_after_opening_is_answered_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(bytes(range(256)) * 1024)
    answer = _client(path).get("/")
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(256 * 1024)
    assert answer.content == bytes(range(256)) * 1024


def test_a_range_of_a_removed_file_is_answered(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(bytes(range(256)) * 1024)
    answer = _client(path).get("/", headers={"Range": "bytes=70000-70009"})
    assert answer.status_code == 206
    assert answer.headers["content-range"] == f"bytes 70000-70009/{256 * 1024}"
    assert answer.content == (bytes(range(256)) * 1024)[70000:70010]


def test_several_ranges_of_a_removed_file_are_answered(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(bytes(range(65, 165)))
    answer = _client(path).get("/", headers={"Range": "bytes=0-1,50-51"})
    assert answer.status_code == 206
    assert answer.headers["content-type"].startswith("multipart/byteranges")
    assert b"\r\n\r\nAB\r\n" in answer.content and b"\r\n\r\nst\r\n" in answer.content


def test_head_of_a_removed_file_gives_its_size(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"abc")
    answer = _client(path).head("/")
    assert answer.status_code == 200 and answer.headers["content-length"] == "3" and answer.content == b""


def test_a_missing_name_or_a_directory_is_not_found(tmp_path: Path) -> None:
    assert _client(tmp_path / "gone.bin").get("/").status_code == 404
    (tmp_path / "dir").mkdir()
    assert open_regular_file(tmp_path / "dir") is None
