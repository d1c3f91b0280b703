"""References between the tasks of a request, and the waits of a shard: no Ray, no server."""

from __future__ import annotations

import pytest

from dragon import pipelines, registry
from dragon.actors.waits import Waits
from dragon.errors import InvalidRequestError
from dragon.status import TaskRecord, new_key

registry.load()
KEYS = [new_key() for _ in range(3)]


def chain(*uses: dict) -> list[dict]:
    return [
        {"task_name": "image.thumb", "url": "https://example.com/a.jpg"},
        *({"task_name": "image.info", "url": use} for use in uses),
    ]


def test_references_are_found_in_parameters_and_list_items() -> None:
    refs = pipelines.references(
        [
            {"task_name": "image.thumb", "url": "https://example.com/a.jpg"},
            {"task_name": "image.strip", "urls": ["https://example.com/b.jpg", {"task": 0}], "width": 10},
            {"task_name": "image.info", "url": {"task": KEYS[0], "result": "output"}},
        ]
    )
    assert [(r.index, r.parameter, r.item, r.task, r.result) for r in refs] == [
        (1, "urls", 1, 0, None),
        (2, "url", None, KEYS[0], "output"),
    ]
    assert refs[0].where == "tasks.1.urls.1"


@pytest.mark.parametrize(
    "reference, message",
    [
        ({"task": 0, "other": 1}, "only 'task' and 'result'"),
        ({"task": True}, "must be the index"),
        ({"task": "not-a-key"}, "must be the index"),
        ({"task": 0, "result": ""}, "name of a file result"),
    ],
)
def test_malformed_references_are_refused(reference: dict, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as caught:
        pipelines.references(chain(reference))
    assert caught.value.field == "tasks.1.url"


def test_cycles_and_missing_indexes_are_refused() -> None:
    definitions = [
        {"task_name": "image.thumb", "url": {"task": 2}},
        {"task_name": "image.thumb", "url": {"task": 0}},
        {"task_name": "image.thumb", "url": {"task": 1}},
    ]
    with pytest.raises(InvalidRequestError, match=r"cycle: 0 -> 2 -> 1 -> 0"):
        pipelines.check_order(pipelines.references(definitions), 3)
    with pytest.raises(InvalidRequestError, match="its own output"):
        pipelines.check_order(pipelines.references(chain({"task": 1})), 2)
    with pytest.raises(InvalidRequestError, match="no task at index 5"):
        pipelines.check_order(pipelines.references(chain({"task": 5})), 2)


def test_a_forward_reference_that_resolves_is_accepted() -> None:
    definitions = [
        {"task_name": "image.info", "url": {"task": 1}},
        {"task_name": "image.thumb", "url": "https://x/a.jpg"},
    ]
    pipelines.check_order(pipelines.references(definitions), 2)


def test_named_results_must_be_file_results_of_the_used_type() -> None:
    [ref] = pipelines.references(chain({"task": 0, "result": "width"}))
    with pytest.raises(InvalidRequestError, match="no file result 'width'"):
        pipelines.check_result(ref, "image.thumb")
    [ref] = pipelines.references(chain({"task": 0}))
    with pytest.raises(InvalidRequestError, match="produces no file"):
        pipelines.check_result(ref, "image.info")
    pipelines.check_result(ref, "video.create")


def test_the_main_output_of_a_movie_is_its_export_else_the_first_file() -> None:
    result = {"preview": "https://s/p.mp4", "export": "https://s/e.mp4", "thumbnail": "https://s/t.jpg"}
    assert pipelines.output_url("video.create", result, None) == "https://s/e.mp4"
    assert pipelines.output_url("video.create", {"preview": "https://s/p.mp4"}, None) == "https://s/p.mp4"
    assert pipelines.output_url("video.create", result, "thumbnail") == "https://s/t.jpg"
    assert pipelines.output_url("image.thumb", "not a dict", None) is None


def record_using(*uses: dict) -> TaskRecord:
    refs = pipelines.references(chain(*uses))
    definition = pipelines.substitute(chain(*uses)[1], refs, KEYS)
    info = registry.get("image.info")
    assert info is not None
    record = TaskRecord(
        KEYS[1],
        "alice",
        "image.info",
        info.validate({k: v for k, v in definition.items() if k != "task_name"}),
    )
    return TaskRecord(**{**record.to_json(), "uses": pipelines.uses(refs, KEYS, {KEYS[0]: "image.thumb"})})


def test_resolving_puts_the_used_output_in_place_of_the_placeholder() -> None:
    record = record_using({"task": 0})
    assert record.params["url"].startswith(pipelines.PLACEHOLDER)
    ended = {KEYS[0]: {"status": "success", "result": {"output": "https://s/thumb.jpg", "width": 10}}}
    resolved = pipelines.resolve(record, ended)
    assert isinstance(resolved, TaskRecord) and resolved.params["url"] == "https://s/thumb.jpg"
    assert record.params["url"].startswith(pipelines.PLACEHOLDER)  # the journal's record is unchanged


def test_a_used_task_in_error_ends_its_user_in_a_dependency_error() -> None:
    record = record_using({"task": 0})
    ended = {KEYS[0]: {"status": "error", "error": "CouldNotDownloadError: HTTP 404"}}
    assert pipelines.resolve(record, ended) == (
        f"DependencyError: task 0 ({KEYS[0]}) ended in error: CouldNotDownloadError: HTTP 404"
    )


def test_waiters_start_once_every_used_task_has_ended() -> None:
    waits = Waits()
    record = TaskRecord(KEYS[2], "alice", "image.info", {})
    waits.add(record, [KEYS[0], KEYS[1]])
    assert waits.ended(KEYS[0], {"status": "success"}, "node-a") == []
    assert waits.ended(KEYS[0], {"status": "success"}, None) == []  # told twice: once is enough
    [waiter] = waits.ended(KEYS[1], {"status": "success"}, "node-b")
    assert waiter.record is record and set(waiter.ended) == {KEYS[0], KEYS[1]} and waiter.near == "node-a"
    assert KEYS[2] not in waits and not waits.watched(KEYS[1])


def test_a_dropped_waiter_is_no_longer_started() -> None:
    waits = Waits()
    waits.add(TaskRecord(KEYS[2], "alice", "image.info", {}), [KEYS[0]])
    assert waits.drop(KEYS[2]) and not waits.drop(KEYS[2])
    assert not waits.watched(KEYS[0]) and waits.ended(KEYS[0], {"status": "success"}, None) == []
