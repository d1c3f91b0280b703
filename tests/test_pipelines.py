"""Pipelines over the real HTTP service: tasks of one request (or earlier tasks of the same
account) whose outputs are other tasks' inputs (docs/api.md, "Pipelines")."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from dragon.client import Client
from tests.conftest import Api, DragonProcess
from tests.support.servers import Origin, Receiver
from tests.test_client import dragon_cli

PHOTO = "images_exif/exif_samples/Canon_40D.jpg"
VIDEO = "video/js_ffmpeg/video-640-360.mp4"


def ended(api: Api, tasks: Any, **extra: Any) -> list[dict[str, Any]]:
    """Create, then wait for every task to end (a chain may outlast one block time-out)."""
    return api.wait([s["key"] for s in api.create(tasks, **extra)], timeout=240)


def refused(api: Api, tasks: Any) -> dict[str, Any]:
    r = api.http.post("/v2/create", json={"secret": api.secret, "tasks": tasks})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "error"
    return body["errors"][0]


def test_a_thumbnail_is_probed_in_the_same_request(api: Api, media: Origin) -> None:
    thumb, info = ended(
        api,
        [
            {"task_name": "image.thumb", "url": f"{media.url}/{PHOTO}", "width": 120, "format": "png"},
            {"task_name": "image.info", "url": {"task": 0}},
        ],
    )
    assert thumb["status"] == "success", thumb.get("error")
    assert info["status"] == "success", info.get("error")
    assert (info["result"]["width"], info["result"]["content_type"]) == (120, "image/png")
    assert info["result"]["height"] == thumb["result"]["height"]
    assert thumb["events"]["completed"] <= info["events"]["started"]
    [detailed] = api.status([info["key"]], details="true")
    assert detailed["details"]["uses"] == [{"parameter": "url", "item": None, "task": thumb["key"], "result": None}]


def test_a_converted_video_feeds_a_thumbnail_and_a_strip(api: Api, media: Origin) -> None:
    convert, thumb, strip = api.create(
        [
            {"task_name": "video.convert", "url": f"{media.url}/{VIDEO}", "width": 320},
            {"task_name": "video.thumb", "url": {"task": 0}, "time": 1, "format": "png"},
            {"task_name": "video.strip", "url": {"task": 0, "result": "output"}, "count": 3, "width": 64, "height": 36},
        ]
    )
    convert, thumb, strip = api.wait([convert["key"], thumb["key"], strip["key"]], timeout=400)
    assert [s["status"] for s in (convert, thumb, strip)] == ["success"] * 3, [
        s.get("error") for s in (convert, thumb, strip)
    ]
    assert (thumb["result"]["original_width"], thumb["result"]["original_height"]) == (320, 180)
    assert Image.open(io.BytesIO(httpx.get(thumb["result"]["output"]).content)).size == (320, 180)
    assert strip["result"]["count"] == 3 and strip["result"]["original_width"] == 320
    assert thumb["result"]["duration"] == pytest.approx(convert["result"]["duration"], abs=0.1)


def test_a_rendered_movie_feeds_a_thumbnail(api: Api) -> None:
    movie, thumb = api.create(
        [
            {
                "task_name": "video.create",
                "definition": '<effect type="none" duration="1"><image color="#ff0000"/></effect>',
                "profile": "mobile-small",
            },
            {"task_name": "video.thumb", "url": {"task": 0}, "format": "png"},
        ]
    )
    movie, thumb = api.wait([movie["key"], thumb["key"]], timeout=400)
    assert thumb["status"] == "success", (movie.get("error"), thumb.get("error"))
    picture = Image.open(io.BytesIO(httpx.get(thumb["result"]["output"]).content)).convert("RGB")
    pixel = picture.getpixel((picture.width // 2, picture.height // 2))
    assert isinstance(pixel, tuple)  # an RGB picture's pixel is a triple
    red, green, blue = pixel
    assert red > 200 and green < 60 and blue < 60


def test_a_failed_step_ends_what_uses_it_in_a_dependency_error(api: Api, media: Origin) -> None:
    receiver = Receiver().start()
    try:
        head, middle, tail = ended(
            api,
            [
                {"task_name": "image.thumb", "url": f"{media.url}/missing.jpg"},
                {"task_name": "image.thumb", "url": {"task": 0}, "url_errback": receiver.url},
                {"task_name": "image.info", "url": {"task": 1}},
            ],
        )
        assert head["error"].startswith("CouldNotDownloadError: ")
        assert middle["error"] == f"DependencyError: task 0 ({head['key']}) ended in error: {head['error']}"
        assert tail["error"].startswith(f"DependencyError: task 1 ({middle['key']}) ended in error: DependencyError: ")
        assert "started" not in middle["events"] and "started" not in tail["events"]  # nothing of them ran
        [delivered] = receiver.wait_for(1)
        assert json.loads(delivered["body"])["key"] == middle["key"]
    finally:
        receiver.stop()


def test_canceling_the_head_of_a_chain_ends_what_waits_on_it(api: Api, tmp_path: Path) -> None:
    head, tail = api.create(
        [
            {"task_name": "test.gate", "gate": str(tmp_path / "never"), "store": True},
            {"task_name": "test.copy", "url": {"task": 0}},
        ]
    )
    api.wait_for(head["key"], "executing", timeout=240)
    assert api.status([tail["key"]])[0]["status"] == "queued"
    r = api.http.post("/v2/cancel", json={"secret": api.secret, "tasks": [head["key"]]})
    assert r.status_code == 200, r.text
    [tail] = api.wait([tail["key"]], timeout=240)
    assert tail["error"] == (
        f"DependencyError: task 0 ({head['key']}) ended in error: CanceledError: the task was canceled by its owner"
    )


def test_a_waiting_task_can_be_canceled_alone(api: Api, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    head, tail = api.create(
        [
            {"task_name": "test.gate", "gate": str(gate), "store": True},
            {"task_name": "test.copy", "url": {"task": 0}},
        ]
    )
    r = api.http.post("/v2/cancel", json={"secret": api.secret, "tasks": [tail["key"]]})
    assert r.json()["canceled"] == [tail["key"]]
    gate.touch()
    head, tail = api.wait([head["key"], tail["key"]], timeout=240)
    assert head["status"] == "success" and tail["error"].startswith("CanceledError: ")


def test_a_task_may_use_an_earlier_task_of_its_account(api: Api) -> None:
    [earlier] = ended(api, {"task_name": "test.copy", "text": "made before"})
    [later] = ended(api, {"task_name": "test.copy", "url": {"task": earlier["key"]}})
    assert later["status"] == "success", later.get("error")
    assert httpx.get(later["result"]["output"]).text == "made before"
    assert later["result"]["output"] != earlier["result"]["output"]


def test_an_earlier_task_on_another_shard_is_waited_for(api: Api, tmp_path: Path) -> None:
    """Keys of different requests land on different shards: a waiting shard follows the other's task."""
    gate = tmp_path / "gate"
    heads = api.create([{"task_name": "test.gate", "gate": str(gate), "store": True} for _ in range(4)])
    tails = [api.create({"task_name": "test.copy", "url": {"task": h["key"]}})[0] for h in heads]
    time.sleep(0.5)
    assert {s["status"] for s in api.status([t["key"] for t in tails])} == {"queued"}
    gate.touch()
    done = api.wait([t["key"] for t in tails], timeout=240)
    assert [s["status"] for s in done] == ["success"] * 4, [s.get("error") for s in done]
    assert {httpx.get(s["result"]["output"]).text for s in done} == {"attempt 1"}


def test_another_accounts_task_cannot_be_used(api: Api, dragon: DragonProcess) -> None:
    other = dragon.cli("accounts", "create", "pipeline-mallory")
    [theirs] = ended(Api(dragon.url, other["secret"]), {"task_name": "test.copy", "text": "private"})
    error = refused(api, {"task_name": "test.copy", "url": {"task": theirs["key"]}})
    assert error == {
        "name": "tasks.0.url",
        "location": "body",
        "description": f"there is no task with this ID: {theirs['key']}",
    }


@pytest.mark.parametrize(
    "tasks, field, words",
    [
        (
            [{"task_name": "test.copy", "url": {"task": 1}}, {"task_name": "test.copy", "url": {"task": 0}}],
            "tasks.0",
            "cycle: 0 -> 1 -> 0",
        ),
        ([{"task_name": "test.copy", "url": {"task": 2}}], "tasks.0.url", "no task at index 2"),
        (
            [{"task_name": "test.copy", "text": "x"}, {"task_name": "test.copy", "url": {"task": 0, "result": "size"}}],
            "tasks.1.url",
            "no file result 'size'",
        ),
        (
            [{"task_name": "test.copy", "text": "x"}, {"task_name": "test.copy", "nothing": {"task": 0}}],
            "tasks.1.nothing",
            "has no parameter 'nothing'",
        ),
    ],
)
def test_references_that_cannot_resolve_are_refused(api: Api, tasks: list, field: str, words: str) -> None:
    error = refused(api, tasks)
    assert (error["name"], error["location"]) == (field, "body") and words in error["description"]


def test_a_forward_reference_runs_in_order(api: Api) -> None:
    tail, head = ended(
        api, [{"task_name": "test.copy", "url": {"task": 1}}, {"task_name": "test.copy", "text": "first"}]
    )
    assert tail["status"] == "success", tail.get("error")
    assert httpx.get(tail["result"]["output"]).text == "first"


def test_a_repeated_idempotent_chain_creates_nothing_new(api: Api) -> None:
    tasks = [{"task_name": "test.copy", "text": "once"}, {"task_name": "test.copy", "url": {"task": 0}}]
    first = ended(api, tasks, idempotency_key="pipeline-once")
    again = ended(api, tasks, idempotency_key="pipeline-once")
    assert [s["key"] for s in again] == [s["key"] for s in first]
    assert again == first


def test_waiting_tasks_count_as_queued_but_not_running(dragon: DragonProcess) -> None:
    limited = dragon.cli(
        "accounts", "create", "pipeline-limited", "--max-concurrent-tasks", "1", "--max-queued-tasks", "3"
    )
    api = Api(dragon.url, limited["secret"])
    chain = [
        {"task_name": "test.copy", "text": "a"},
        {"task_name": "test.copy", "url": {"task": 0}},
        {"task_name": "test.copy", "url": {"task": 1}},
    ]
    done = ended(api, chain)
    assert [s["status"] for s in done] == ["success"] * 3, [s.get("error") for s in done]
    r = api.http.post("/v2/create", json={"secret": api.secret, "tasks": [*chain, {"task_name": "hello", "name": "x"}]})
    assert r.status_code == 401 and r.json()["errors"][0]["description"] == "account limits reached"


def test_the_python_client_sends_a_pipeline(dragon: DragonProcess, account: dict[str, Any]) -> None:
    with Client(dragon.url, secret=account["secret"]) as client:
        statuses = list(
            client.create_stream(
                [{"task_name": "test.copy", "text": "streamed"}, {"task_name": "test.copy", "url": {"task": 0}}]
            )
        )
    final = {s.key: s for s in statuses if s.ended}
    assert len(final) == 2 and all(s.status == "success" for s in final.values())


def test_the_cli_sends_a_pipeline(dragon: DragonProcess, account: dict[str, Any]) -> None:
    done = dragon_cli(
        dragon,
        account,
        "create",
        "test.copy",
        "text=from the shell",
        "+",
        "test.copy",
        "url=@0",
        "+",
        "test.copy",
        "url=@1:output",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    first, second, third = json.loads(done.stdout)
    assert httpx.get(third["result"]["output"]).text == "from the shell"
    again = dragon_cli(dragon, account, "create", "test.copy", f"url=@{first['key']}", "--wait", "--json")
    assert json.loads(again.stdout)[0]["status"] == "success", again.stderr


def test_a_restart_mid_chain_finishes_it_without_running_a_finished_step_again(
    dragon: DragonProcess, api: Api, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first, middle, last = api.create(
        [
            {"task_name": "test.copy", "text": "seed"},
            {"task_name": "test.gate", "url": {"task": 0}, "gate": str(gate), "store": True},
            {"task_name": "test.copy", "url": {"task": 1}},
        ]
    )
    api.wait_for(middle["key"], "executing", timeout=240)
    [first] = api.status([first["key"]])
    assert first["status"] == "success"
    dragon.restart()
    gate.touch()
    after_first, middle, last = api.wait([first["key"], middle["key"], last["key"]], timeout=240)
    assert after_first == first  # ended before the restart: not run again
    assert middle["status"] == "success" and last["status"] == "success", (middle.get("error"), last.get("error"))
    assert httpx.get(last["result"]["output"]).text == f"attempt {middle['result']['attempt']}"


def test_a_step_reads_the_previous_output_in_place(api: Api) -> None:
    """On the node's local store, the next step's input is the stored file itself: no
    HTTP request, no copy."""
    made, used = ended(
        api, [{"task_name": "test.big", "megabytes": 8}, {"task_name": "test.input", "url": {"task": 0}}]
    )
    assert used["status"] == "success", used.get("error")
    assert used["result"] == {"links": 2, "size": 8 << 20, "opened": "file"}  # the stored file and the input


def test_on_s3_a_step_on_the_same_node_reads_the_copy_its_node_kept(guarded: Api) -> None:
    made, used = ended(
        guarded, [{"task_name": "test.big", "megabytes": 8}, {"task_name": "test.input", "url": {"task": 0}}]
    )
    assert used["status"] == "success", used.get("error")
    assert used["result"] == {"links": 2, "size": 8 << 20, "opened": "file"}  # the node's copy and the input


def test_openapi_documents_references_in_input_parameters(api: Api) -> None:
    import jsonschema

    doc = api.http.get("/openapi.json").json()

    def valid(definition: dict) -> bool:
        schema = {"$ref": f"#/components/schemas/Task.{definition['task_name']}", "components": doc["components"]}
        return jsonschema.validators.Draft202012Validator(schema).is_valid(definition)

    assert valid({"task_name": "image.info", "url": {"task": 0}})
    assert valid(
        {
            "task_name": "image.strip",
            "urls": ["http://x/a.jpg", {"task": "A" * 26, "result": "output"}],
            "width": 10,
            "height": 10,
        }
    )
    assert not valid({"task_name": "image.info", "url": {"task": 0, "other": 1}})
    assert doc["components"]["schemas"]["Task.image.info"]["properties"]["url"]["description"]
