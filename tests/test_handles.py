"""Python users on the cluster: dragon.connect() gives the API through Ray handles."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.conftest import DragonProcess


@pytest.fixture(scope="module")
def handles(dragon: DragonProcess, account: dict) -> Iterator:
    import ray

    import dragon as dragon_pkg

    client = dragon_pkg.connect(account="alice", address=dragon.ray_address)
    yield client
    ray.shutdown()


def test_create_with_block_through_ray_handles(handles) -> None:
    [status] = handles.create({"task_name": "hello", "name": "Ray"}, block=True)
    assert status["status"] == "success"
    assert status["result"] == "Hello Ray"


def test_status_wait_and_stream_through_ray_handles(handles) -> None:
    statuses = handles.create([{"task_name": "test.steps", "steps": 2, "delay": 0.1}, {"task_name": "hello", "name": "B"}])
    keys = [s["key"] for s in statuses]
    lines = list(handles.stream(keys))
    assert [s["key"] for s in lines[0]] == keys
    final = handles.wait(keys)
    assert [s["status"] for s in final] == ["success", "success"]
    assert final[0]["result"] == {"steps": 2}
    assert handles.status(keys, details=True)[1]["details"]["task_name"] == "hello"


def test_a_pipeline_through_ray_handles(handles) -> None:
    first, second = handles.create([{"task_name": "test.copy", "text": "by handle"},
                                    {"task_name": "test.copy", "url": {"task": 0}}], block=True)
    assert second["status"] == "success", second.get("error")
    assert handles.status(second["key"], details=True)[0]["details"]["uses"][0]["task"] == first["key"]


def test_unknown_account_is_refused(dragon: DragonProcess, handles) -> None:
    import dragon as dragon_pkg

    with pytest.raises(LookupError):
        dragon_pkg.connect(account="nobody")
