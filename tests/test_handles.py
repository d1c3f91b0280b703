"""Python users on the cluster: dragon.connect() gives the API through Ray handles, from
a driver, a running event loop (Jupyter), Ray tasks and async actors, with ObjectRefs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

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
    statuses = handles.create(
        [{"task_name": "test.steps", "steps": 2, "delay": 0.1}, {"task_name": "hello", "name": "B"}]
    )
    keys = [s["key"] for s in statuses]
    lines = list(handles.stream(keys))
    assert [s["key"] for s in lines[0]] == keys
    final = handles.wait(keys)
    assert [s["status"] for s in final] == ["success", "success"]
    assert final[0]["result"] == {"steps": 2}
    assert handles.status(keys, details=True)[1]["details"]["task_name"] == "hello"


def test_a_pipeline_through_ray_handles(handles) -> None:
    first, second = handles.create(
        [{"task_name": "test.copy", "text": "by handle"}, {"task_name": "test.copy", "url": {"task": 0}}], block=True
    )
    assert second["status"] == "success", second.get("error")
    assert handles.status(second["key"], details=True)[0]["details"]["uses"][0]["task"] == first["key"]


def test_unknown_account_is_refused(dragon: DragonProcess, handles) -> None:
    import dragon as dragon_pkg

    with pytest.raises(LookupError):
        dragon_pkg.connect(account="nobody")


def test_the_blocking_api_works_inside_a_running_event_loop(handles) -> None:
    async def notebook_cell() -> list[dict[str, Any]]:  # Jupyter runs cells in a running loop
        created = handles.create({"task_name": "test.steps", "steps": 2, "delay": 0.05})
        lines = list(handles.stream([created[0]["key"]]))
        return [lines[-1], *handles.create({"task_name": "hello", "name": "Jupyter"}, block=True)]

    streamed, blocked = asyncio.run(notebook_cell())
    assert streamed["status"] == "success" and streamed["result"] == {"steps": 2}
    assert blocked["result"] == "Hello Jupyter"


def test_the_async_api_runs_on_the_callers_loop(handles) -> None:
    async def scenario() -> tuple[list[Any], list[dict[str, Any]]]:
        created = await handles.aio.create(
            [{"task_name": "test.steps", "steps": 2, "delay": 0.05}, {"task_name": "hello", "name": "aio"}]
        )
        keys = [s["key"] for s in created]
        lines = [line async for line in handles.aio.stream(keys)]
        return lines, await handles.aio.wait(keys)

    lines, final = asyncio.run(scenario())
    assert [s["status"] for s in lines[0]] and lines[-1]["status"] == "success"
    assert [s["result"] for s in final] == [{"steps": 2}, "Hello aio"]


def test_submit_answers_object_refs_that_ray_waits_on_and_passes_to_tasks(handles) -> None:
    import ray

    refs = handles.submit(
        [{"task_name": "test.steps", "steps": 2, "delay": 0.1}, {"task_name": "hello", "name": "ref"}]
    )
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    ready, pending = ray.wait(refs, num_returns=2, timeout=60)
    assert len(ready) == 2 and pending == []

    @ray.remote(num_cpus=0)
    def results(*statuses: dict[str, Any]) -> list[Any]:
        return [s["result"] for s in statuses]

    assert ray.get(results.remote(*refs)) == [{"steps": 2}, "Hello ref"]
    assert [s["status"] for s in ray.get(refs)] == ["success", "success"]


def test_inside_a_ray_task(handles) -> None:
    import ray

    @ray.remote(num_cpus=0)
    def job() -> list[Any]:
        import dragon

        d = dragon.connect(account="alice")
        [blocked] = d.create({"task_name": "hello", "name": "task"}, block=True)
        [created] = d.create({"task_name": "test.steps", "steps": 2, "delay": 0.05})
        last = list(d.stream([created["key"]]))[-1]
        [submitted] = ray.get(d.submit({"task_name": "hello", "name": "inner"}))
        return [blocked["result"], last["result"], submitted["result"]]

    assert ray.get(job.remote(), timeout=120) == ["Hello task", {"steps": 2}, "Hello inner"]


def test_inside_an_async_ray_actor(handles) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Deployment:  # as a Serve replica is: an async actor with a running loop
        async def run(self) -> list[Any]:
            import dragon

            d = dragon.connect(account="alice")
            [created] = await d.aio.create({"task_name": "test.steps", "steps": 2, "delay": 0.05})
            last = [line async for line in d.aio.stream(created["key"])][-1]
            [blocked] = d.create({"task_name": "hello", "name": "sync"}, block=True)
            [ref] = await d.aio.submit({"task_name": "hello", "name": "awaited"})
            return [last["result"], blocked["result"], (await ref)["result"]]

    actor = Deployment.remote()  # type: ignore[attr-defined]  # mypy applies no class decorator: @ray.remote made an ActorClass
    try:
        assert ray.get(actor.run.remote(), timeout=120) == [{"steps": 2}, "Hello sync", "Hello awaited"]
    finally:
        ray.kill(actor)
