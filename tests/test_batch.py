"""Batch mode: one task type over a manifest, over HTTP and from the `dragon batch` CLI."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dragon.batches import read_results
from tests.conftest import ROOT, Api, DragonProcess
from tests.support.servers import Origin

PHOTOS = 300


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """PHOTOS generated images, photo-<i>.png of (20 + i % 40) x (10 + i % 7) pixels."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(PHOTOS):
        (root / f"photo-{i}.png").write_bytes(png(20 + i % 40, 10 + i % 7, (i % 256, 80, 160)))
    server = Origin(root)
    yield server
    server.close()


def batch(api: Api, task_name: str, manifest_url: str, seen: list | None = None, **params: Any) -> dict[str, Any]:
    """Runs a batch over HTTP, following its status stream; ``seen`` gets every status."""
    r = api.http.post(
        "/v2/batch", json={"secret": api.secret, "task_name": task_name, "input": manifest_url, "params": params}
    )
    assert r.status_code == 200, r.text
    with api.http.stream("GET", "/v2/stream", params={"tasks": [r.json()["key"]]}, timeout=240) as stream:
        lines = [json.loads(line) for line in stream.iter_lines() if line]
    statuses = lines[0] + lines[1:]
    if seen is not None:
        seen.extend(statuses)
    final = statuses[-1]
    assert final["status"] == "success", final.get("error")
    return final["result"]


def results_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    body = httpx.get(result["output"], timeout=30).content
    return pq.read_table(io.BytesIO(body)).to_pylist()


def test_a_csv_manifest_of_images_through_image_info(api: Api, photos: Origin) -> None:
    urls = [f"{photos.url}/photo-{i}.png" for i in range(PHOTOS)]
    manifest = photos.add("info.csv", ("url\n" + "\n".join(urls) + "\n").encode())
    seen: list[dict[str, Any]] = []
    result = batch(api, "image.info", manifest, seen)
    assert (result["total"], result["done"], result["failed"], result["skipped"]) == (PHOTOS, PHOTOS, 0, 0)
    underway = [s for s in seen if s["status"] == "executing" and s.get("result")]
    assert underway, "the stream shows the batch's progress"
    assert all(0 < s["result"]["done"] <= PHOTOS and s["result"]["rate"] > 0 for s in underway)
    assert any(s["result"]["done"] < PHOTOS for s in underway)
    assert all(s["progress"] == round(100 * s["result"]["done"] / PHOTOS) for s in underway)
    rows = results_of(result)
    assert len(rows) == PHOTOS and {r["status"] for r in rows} == {"success"}
    widths = sorted(r["width"] for r in rows)
    assert widths == sorted(20 + i % 40 for i in range(PHOTOS))
    assert all(isinstance(r["width"], int) for r in rows)  # a typed column, not text


def test_bad_rows_fail_alone_with_their_error(api: Api, photos: Origin) -> None:
    rows: list[dict[str, Any]] = [
        {"key": "good-1", "url": f"{photos.url}/photo-1.png"},
        {"key": "good-2", "url": f"{photos.url}/photo-2.png", "width": 8},  # a row overrides a fixed parameter
        {"key": "text", "url": photos.add("words.png", b"not an image")},
        {"key": "missing", "url": f"{photos.url}/no-such-photo.png"},
        {"key": "no-url"},
        {"key": "bad-width", "url": f"{photos.url}/photo-3.png", "width": "wide"},
    ]
    manifest = photos.add("thumbs.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    result = batch(api, "image.thumb", manifest, width=16)
    found = {r["key"]: r for r in results_of(result)}
    assert (result["total"], result["done"], result["failed"]) == (6, 6, 4)
    assert set(found) == {r["key"] for r in rows}
    assert found["text"]["error"].startswith("InvalidImageError: ")
    assert found["missing"]["error"].startswith("CouldNotDownloadError: ")
    assert found["no-url"]["error"].startswith("InvalidParametersError: ") and "url" in found["no-url"]["error"]
    assert found["bad-width"]["error"].startswith("InvalidParametersError: ")
    for key, width in (("good-1", 16), ("good-2", 8)):
        assert found[key]["status"] == "success" and found[key]["error"] is None
        thumb = Image.open(io.BytesIO(httpx.get(found[key]["output"]).content))
        assert thumb.width == width


def test_running_a_batch_again_redoes_only_what_failed(api: Api, photos: Origin) -> None:
    names = [f"late-{i}.png" for i in range(10)]
    manifest = photos.add("late.csv", ("url\n" + "\n".join(f"{photos.url}/{n}" for n in names)).encode())
    for name in names[:6]:
        photos.add(name, png(30, 20, (1, 2, 3)))
    first = batch(api, "image.info", manifest)
    assert (first["done"], first["failed"], first["skipped"]) == (10, 4, 0)
    for name in names[6:]:
        photos.add(name, png(30, 20, (1, 2, 3)))
    second = batch(api, "image.info", manifest)
    assert (second["done"], second["failed"], second["skipped"]) == (4, 0, 6)
    rows = results_of(second)
    assert len(rows) == 10 and {r["status"] for r in rows} == {"success"}


def test_an_interrupted_cli_batch_resumes_where_it_stopped(
    dragon: DragonProcess, account: dict, tmp_path: Path
) -> None:
    total = 100
    manifest = tmp_path / "steps.jsonl"
    manifest.write_text("\n".join(json.dumps({"n": i, "steps": 1, "delay": 0.1}) for i in range(total)))
    output = tmp_path / "results.parquet"
    command = [
        sys.executable,
        "-m",
        "dragon",
        "batch",
        "test.steps",
        "--input",
        str(manifest),
        "--output",
        str(output),
        "--account",
        "alice",
        "--address",
        dragon.ray_address,
        "--concurrency",
        "1",
        "--part-rows",
        "5",
    ]
    first = subprocess.Popen(
        [*command, "--json"], env=dragon.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(output.glob("part-*.parquet")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    kept = read_results(output).num_rows
    assert 0 < kept < total

    second = subprocess.run([*command, "--json"], env=dragon.env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    counts = json.loads(second.stdout.strip().splitlines()[-1])
    assert counts["skipped"] == kept and counts["done"] == total - kept and counts["failed"] == 0
    table = read_results(output).to_pylist()
    assert len(table) == total and len({r["key"] for r in table}) == total
    assert {r["status"] for r in table} == {"success"}
    assert {r["result"] for r in table} == {json.dumps({"steps": 1})}  # test.steps declares no values


def test_unknown_task_types_and_manifests_are_refused(api: Api, photos: Origin) -> None:
    r = api.http.post(
        "/v2/batch", json={"secret": api.secret, "task_name": "no.such.task", "input": f"{photos.url}/x.csv"}
    )
    assert r.status_code == 200
    [final] = api.wait([r.json()["key"]])
    assert final["status"] == "error" and "task" in final["error"]["parameters"]
    r = api.http.post("/v2/batch", json={"secret": api.secret, "input": f"{photos.url}/x.csv"})
    assert r.status_code == 400


def test_the_cli_takes_relative_paths_finds_the_cluster_and_keeps_the_url_column(
    dragon: DragonProcess, account: dict, photos: Origin, tmp_path: Path
) -> None:
    """The form docs/batch.md shows, run from the manifest's directory, with no --address:
    the Ray address comes from the one `dragon serve` recorded in its data dir."""
    urls = [f"{photos.url}/photo-{i}.png" for i in range(12)]
    (tmp_path / "photos.csv").write_text("url\n" + "\n".join(urls) + "\n")
    env = {**dragon.env, "DRAGON_DATA_DIR": str(dragon.data_dir)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dragon",
            "batch",
            "image.info",
            "--input",
            "photos.csv",
            "--output",
            "infos",
            "--account",
            "alice",
            "--json",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["failed"] == 0
    rows = read_results(str(tmp_path / "infos")).to_pylist()  # a str names the directory too
    assert sorted(r["url"] for r in rows) == sorted(urls)  # joins back to the manifest without the key
    assert all(r["width"] == 20 + int(r["url"].rsplit("-", 1)[1].split(".")[0]) % 40 for r in rows)
