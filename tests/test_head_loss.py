"""Losing the head node: every process of a service on PostgreSQL and SeaweedFS killed at
once (`dragon serve` and its whole Ray cluster), at several moments, then a new head with
an empty data dir on the same journal and bucket. It finishes every task in success, once:
no ended status changes, every output is readable and none is orphaned, and every
callback arrives (docs/deployment.md, "Losing the head node").

Each moment costs two service starts, one of them recovering the lost head's tasks (from
two to four and a half minutes on 2 busy cores): mid-batch runs in the default suite, the
other moments with ``-m slow``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Api, service_env
from tests.support.platforms import Platforms
from tests.support.servers import Origin, PostgresServer, Receiver, SeaweedS3
from tests.support.service import DragonProcess

IMAGES = [f"images_exif/orientation_recurser/Landscape_{n}.jpg" for n in range(8)]
VIDEOS = ["video/js_ffmpeg/video-640-360.mp4", "video/js_ffmpeg/iphone_rotated.mov"]
ENDED = ("success", "error")
pytestmark = pytest.mark.timeout(600)


class Heads:
    """One journal (a fresh PostgreSQL database) and one bucket prefix, and the heads that
    serve them one after another, each with an empty data dir of its own."""

    def __init__(self, base: Path, env: dict[str, str], s3: SeaweedS3):
        self.base, self.env, self.s3 = base, env, s3
        self.prefix = env["DRAGON_S3_PREFIX"]
        self.current: DragonProcess | None = None

    def start(self) -> DragonProcess:
        self.current = DragonProcess(self.base / f"head-{len(list(self.base.iterdir()))}" / "data", self.env)
        self.current.data_dir.parent.mkdir(parents=True)
        self.current.start()
        return self.current

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.env["DRAGON_JOURNAL_DSN"]) as conn:
            return conn.execute(query).fetchall()

    def objects(self) -> set[str]:
        pages = self.s3.client.get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket, Prefix=self.prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture
def heads(
    tmp_path: Path, platforms: Platforms, postgres: PostgresServer, s3: SeaweedS3, request: pytest.FixtureRequest
) -> Iterator[Heads]:
    env = {
        **service_env(platforms),
        "DRAGON_JOURNAL_DSN": postgres.new_database(),
        "DRAGON_STORAGE_BACKEND": "s3",
        "DRAGON_S3_ENDPOINT_URL": s3.endpoint,
        "DRAGON_S3_BUCKET": s3.bucket,
        "DRAGON_S3_PREFIX": f"head-loss-{request.node.name.rsplit('_', 1)[-1]}",
        "DRAGON_S3_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "DRAGON_S3_SECRET_ACCESS_KEY": s3.SECRET_KEY,
        "DRAGON_LEASE_SECONDS": "6",  # the new head waits at most this for the dead one's lease
    }
    found = Heads(tmp_path, env, s3)
    yield found
    if found.current is not None and found.current.proc is not None:
        found.current.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _account(head: DragonProcess) -> Api:
    """At most 2 tasks at once: the head that replaces a lost one starts while it re-runs
    them, and 2 busy cores must still start its Serve proxy in time."""
    return Api(head.url, head.cli("accounts", "create", "hana", "--max-concurrent-tasks", "2")["secret"], head)


def _tasks(media: Origin, receiver: Receiver, count: int) -> list[dict[str, Any]]:
    """Image thumbs and video conversions, as in the run by hand of issue 27, with callbacks."""
    kinds = [
        {"task_name": "image.thumb", "url": f"{media.url}/{image}", "width": 64 + i} for i, image in enumerate(IMAGES)
    ]
    kinds += [{"task_name": "video.convert", "url": f"{media.url}/{video}", "width": 96, "crf": 40} for video in VIDEOS]
    return [{**kinds[i % len(kinds)], "url_callback": f"{receiver.url}/done/{i}"} for i in range(count)]


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def _replace_the_head(heads: Heads, api: Api) -> Api:
    """Kill every process of the head; start another on the same journal and bucket."""
    assert heads.current is not None
    heads.current.kill()
    second = heads.start()
    return Api(second.url, api.secret, second)


def _every_task_ends_once(
    heads: Heads, api: Api, keys: list[str], receiver: Receiver, before: dict[str, dict[str, Any]]
) -> None:
    """In success; ``before`` (the statuses that had ended) unchanged; every output readable
    and none orphaned; every callback arrived, each as one delivery."""
    final = api.wait(keys, timeout=300)
    assert [s["status"] for s in final] == ["success"] * len(keys), [s.get("error") for s in final]
    assert {s["key"]: s for s in final if s["key"] in before} == before
    assert heads.rows("SELECT token FROM lease") == [(2,)]  # the new head took the dead one's lease over

    referenced = set()
    for status in final:
        answer = httpx.get(status["result"]["output"], timeout=30)
        assert answer.status_code == 200 and len(answer.content) > 100, status
        referenced.add(status["result"]["output"].split(f"/{heads.s3.bucket}/", 1)[1].split("?", 1)[0])
    assert heads.objects() == referenced  # a re-run discarded what the lost attempt had stored

    _until(
        lambda: {json.loads(r["body"])["key"] for r in receiver.received if r["answered"] == 200} >= set(keys),
        120,
        "not every callback arrived",
    )
    deliveries: dict[str, set[str]] = {}
    for request in receiver.received:
        body = json.loads(request["body"])
        assert body["status"] == "success" and body["key"] in keys
        deliveries.setdefault(body["key"], set()).add(request["headers"]["X-Dragon-Delivery"])
    assert all(len(ids) == 1 for ids in deliveries.values()), deliveries  # a callback sent again is the same delivery


def _ended(api: Api, keys: list[str]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in api.status(keys) if s["status"] in ENDED}


def test_a_head_lost_mid_batch_is_replaced_and_every_task_ends_once(
    heads: Heads, media: Origin, receiver: Receiver
) -> None:
    first = heads.start()
    api = _account(first)
    keys = [s["key"] for s in api.create(_tasks(media, receiver, 30))]
    _until(lambda: sum(s["status"] in ENDED for s in api.status(keys)) >= 10, 180, "10 tasks never ended")
    before = _ended(api, keys)
    assert len(before) < len(keys)  # mid-batch: some still to run
    _every_task_ends_once(heads, _replace_the_head(heads, api), keys, receiver, before)


@pytest.mark.slow
def test_a_head_lost_during_a_create_is_replaced_and_every_accepted_task_ends_once(
    heads: Heads, media: Origin, receiver: Receiver
) -> None:
    first = heads.start()
    api = _account(first)
    answered: list[list[str]] = []
    interrupted: list[BaseException] = []

    def create_until_the_head_is_lost() -> None:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            while True:
                try:
                    r = http.post("/v2/create", json={"secret": api.secret, "tasks": _tasks(media, receiver, 10)})
                    r.raise_for_status()
                except httpx.HTTPError as exc:
                    interrupted.append(exc)
                    return
                answered.append([s["key"] for s in r.json()])

    creating = threading.Thread(target=create_until_the_head_is_lost)
    creating.start()
    _until(lambda: len(answered) >= 2, 120, "no create was answered")
    before = len(answered)
    time.sleep(0.05)  # into the next create
    first.kill()
    creating.join(60)
    assert interrupted and len(answered) <= before + 1
    # What the journal accepted is what the new head finishes: the answered creates, and
    # the interrupted one only if its tasks were written before the kill (all or none).
    journal_keys = [row[0] for row in heads.rows("SELECT key FROM tasks ORDER BY seq")]
    answered_keys = [k for keys in answered for k in keys]
    assert journal_keys[: len(answered_keys)] == answered_keys and len(journal_keys) - len(answered_keys) in (0, 10)
    second = heads.start()
    _every_task_ends_once(heads, Api(second.url, api.secret, second), journal_keys, receiver, {})


@pytest.mark.slow
def test_a_head_lost_while_callbacks_are_being_sent_is_replaced_and_every_callback_arrives(
    heads: Heads, media: Origin, receiver: Receiver
) -> None:
    first = heads.start()
    api = _account(first)
    receiver.answers = [503] * 40  # deliveries stay pending, retried with back-off
    keys = [s["key"] for s in api.create(_tasks(media, receiver, 20))]
    _until(lambda: all(s["status"] in ENDED for s in api.status(keys)), 180, "the tasks never ended")
    _until(lambda: len(receiver.received) >= 10, 60, "no callback was sent")
    assert not {json.loads(r["body"])["key"] for r in receiver.received if r["answered"] == 200} >= set(keys)
    before = _ended(api, keys)
    _every_task_ends_once(heads, _replace_the_head(heads, api), keys, receiver, before)
