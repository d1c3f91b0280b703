"""The status book's rules: a change is shown only once the journal holds it, every shown
change wakes the long polls of its key, and a stream sees each transition in order."""

from __future__ import annotations

import asyncio
from typing import Any

from dragon.actors.book import HISTORY, StatusBook
from dragon.actors.messages import Change, Finished, Reported, Started
from dragon.status import TaskRecord, TaskStatus, new_key


def _queued(book: StatusBook) -> TaskStatus:
    record = TaskRecord(key=new_key(), account="acme", task_name="hello", params={})
    status = book.add(TaskStatus.queued(record))
    book.publish(status)
    return status


def _applied(book: StatusBook, key: str, change: Change) -> TaskStatus:
    """The status ``change`` computes, which must apply."""
    status = book.apply(key, change)
    assert status is not None
    return status


def _shown(book: StatusBook, key: str) -> tuple[int, dict[str, Any]]:
    """The (version, public status) shown for a known key."""
    [found] = book.found([key])
    assert found is not None
    return found


def test_a_change_is_hidden_until_the_journal_holds_it() -> None:
    book = StatusBook()
    status = _queued(book)
    started = book.apply(status.key, Started(attempt=1, at="2026-11-30T10:00:00+00:00"))
    assert started is not None and book.latest(status.key) is started
    _, shown = _shown(book, status.key)
    assert shown["status"] == "queued"  # computed, not yet written
    book.publish(started)
    version, shown = _shown(book, status.key)
    assert shown["status"] == "executing" and version == started.version


def test_a_change_that_could_not_be_written_is_reverted_and_the_next_builds_on_the_journal() -> None:
    book = StatusBook()
    status = _queued(book)
    lost = book.apply(status.key, Reported(progress=40))
    assert lost is not None
    book.revert(lost)
    finished = book.apply(status.key, Finished(result={"n": 1}))
    assert finished is not None and finished.progress is None and finished.status == "success"


def test_a_new_task_whose_creation_was_not_written_never_existed() -> None:
    book = StatusBook()
    record = TaskRecord(key=new_key(), account="acme", task_name="hello", params={})
    book.add(TaskStatus.queued(record))
    book.forget([record.key])
    assert book.found([record.key]) == [None] and book.missing([record.key]) == [record.key]


def test_an_ended_task_takes_no_further_change() -> None:
    book = StatusBook()
    status = _queued(book)
    book.publish(_applied(book, status.key, Finished(error="CanceledError: canceled")))
    assert book.apply(status.key, Started(attempt=2, at="x")) is None
    assert book.unended([status.key]) == []


def test_an_older_version_published_late_does_not_replace_a_newer_one() -> None:
    book = StatusBook()
    status = _queued(book)
    first = _applied(book, status.key, Reported(progress=10))
    second = _applied(book, status.key, Reported(progress=20))
    book.publish(second)
    book.publish(first)
    _, shown = _shown(book, status.key)
    assert shown["progress"] == 20


def test_a_stream_sees_every_transition_in_version_order_and_only_the_last_history() -> None:
    book = StatusBook()
    a, b = _queued(book), _queued(book)
    cursors = {a.key: a.version, b.key: b.version}
    book.publish(_applied(book, a.key, Reported(progress=1)))
    book.publish(_applied(book, b.key, Reported(progress=2)))
    book.publish(_applied(book, a.key, Reported(progress=3)))
    changes = book.newer(cursors)
    assert [(key, doc["progress"]) for key, _, doc in changes] == [(a.key, 1), (b.key, 2), (a.key, 3)]
    assert [version for _, version, _ in changes] == sorted(version for _, version, _ in changes)
    for progress in range(HISTORY + 10):
        book.publish(_applied(book, a.key, Reported(progress=progress)))
    assert len([c for c in book.newer({a.key: 0}) if c[0] == a.key]) == HISTORY


async def _waiting(book: StatusBook, keys: list[str], until_all_ended: bool) -> asyncio.Task:
    task = asyncio.create_task(book.wait(keys, until_all_ended=until_all_ended, timeout=5))
    await asyncio.sleep(0)  # the waiter registers
    return task


def test_a_long_poll_wakes_on_the_first_published_change_of_its_keys() -> None:
    async def scenario() -> None:
        book = StatusBook()
        status = _queued(book)
        poll = await _waiting(book, [status.key], until_all_ended=False)
        computed = _applied(book, status.key, Reported(progress=5))
        await asyncio.sleep(0.01)
        assert not poll.done()  # not shown yet: nothing to wake for
        book.publish(computed)
        await asyncio.wait_for(poll, 1)
        assert book.waiting == 0  # the finished poll left nothing behind

    asyncio.run(scenario())


def test_a_wait_for_all_ended_wakes_only_once_the_last_key_ends() -> None:
    async def scenario() -> None:
        book = StatusBook()
        a, b = _queued(book), _queued(book)
        poll = await _waiting(book, [a.key, b.key], until_all_ended=True)
        book.publish(_applied(book, a.key, Finished(result=1)))
        book.publish(_applied(book, b.key, Reported(progress=50)))
        await asyncio.sleep(0.01)
        assert not poll.done()
        book.publish(_applied(book, b.key, Finished(result=2)))
        await asyncio.wait_for(poll, 1)

    asyncio.run(scenario())


def test_a_long_poll_times_out_without_a_change_and_unregisters() -> None:
    async def scenario() -> None:
        book = StatusBook()
        status = _queued(book)
        await book.wait([status.key], until_all_ended=False, timeout=0.01)
        assert book.waiting == 0

    asyncio.run(scenario())


def test_ended_statuses_read_back_from_the_journal_are_served_from_memory() -> None:
    book = StatusBook()
    record = TaskRecord(key=new_key(), account="acme", task_name="hello", params={})
    ended = TaskStatus(
        key=record.key,
        status="success",
        events={"queued": "q", "started": "s", "completed": "c"},
        result={"ok": True},
        version=7,
    )
    assert book.missing([record.key]) == [record.key]
    book.load([ended])
    assert book.missing([record.key]) == []
    assert book.found([record.key]) == [(7, ended.public())]
