"""Account limits across shards (dragon/actors/ledger.py), with shards as plain objects:
every message between them goes through the event loop, as Ray's calls would."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from dragon.actors.ledger import Ledger, LimitReached, Scheduler, home_of
from dragon.actors.messages import Holding
from dragon.status import TaskRecord, new_key


class World:
    """``shards`` schedulers and ledgers; ``running`` holds the keys started and not ended."""

    def __init__(self, shards: int, max_running: int, max_open: int):
        self.max_running, self.max_open = max_running, max_open
        self.running: dict[str, int] = {}
        self.peak = 0
        self.ledgers = [Ledger(shards, self) for _ in range(shards)]
        self.schedulers = [Scheduler(i, f"life-1-of-{i}", self._home, self._starter(i)) for i in range(shards)]
        self.shards = shards

    def _starter(self, shard: int) -> Callable[[TaskRecord], None]:
        def start(record: TaskRecord) -> None:
            self.running[record.key] = shard
            self.peak = max(self.peak, len(self.running))
            assert len(self.running) <= self.max_running

        return start

    def _home(self, account: str) -> RemoteHome:
        return RemoteHome(self.ledgers[home_of(account, self.shards)])

    # Peers, as the ledgers see the shards

    async def give_back_unused(self, shard: int, account: str, *, run: bool, open: bool) -> Holding:
        await asyncio.sleep(0)
        return self.schedulers[shard].give_back_unused(account, run=run, open=open)

    async def set_target(self, shard: int, account: str, target: int | None) -> Holding:
        await asyncio.sleep(0)
        return self.schedulers[shard].set_target(account, target)

    def granted(self, shard: int, account: str, run: int, *, more: bool) -> None:
        asyncio.get_running_loop().call_soon(lambda: self.schedulers[shard].granted(account, run, more=more))

    async def holding(self, shard: int, account: str) -> Holding:
        return self.schedulers[shard].holding(account)

    # what clients and workers do

    async def create(self, shard: int, tasks: int, account: str = "alice") -> list[str]:
        scheduler = self.schedulers[shard]
        scheduler.limits(account, self.max_running, self.max_open)
        await scheduler.admit(account, tasks)
        await asyncio.sleep(0)  # the journal write
        records = [TaskRecord(new_key(), account, "hello", {}) for _ in range(tasks)]
        scheduler.enqueue(account, records, tasks)
        return [r.key for r in records]

    def finish(self, key: str, account: str = "alice") -> None:
        shard = self.running.pop(key)
        self.schedulers[shard].finished(account)

    def open_tasks(self, account: str = "alice") -> int:
        return sum(slots.open for s in self.schedulers if (slots := s.slots(account)))

    def queued(self, account: str = "alice") -> int:
        return sum(len(slots.pending) for s in self.schedulers if (slots := s.slots(account)))


class RemoteHome:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    async def acquire(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        await asyncio.sleep(0)
        answer = await self.ledger.acquire(*args, **kwargs)
        await asyncio.sleep(0)
        return answer

    def release(self, account: str, giver: Holding, wants: int | None = None) -> None:
        asyncio.get_running_loop().call_soon(self.ledger.release, account, giver, wants)


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize("seed", range(25))
def test_limits_hold_across_shards_refusals_are_exact_and_every_task_runs(seed: int) -> None:
    """Random creates on random shards and random ends, for random shard counts and limits."""

    async def scenario() -> None:
        rng = random.Random(seed)
        shards, max_running = rng.randint(1, 5), rng.randint(1, 12)
        max_open = rng.randint(max_running, 60)
        world = World(shards, max_running, max_open)
        for _ in range(300):
            if rng.random() < 0.4:
                tasks, before = rng.randint(1, 8), world.open_tasks()
                try:
                    await world.create(rng.randrange(shards), tasks)
                except LimitReached:
                    assert before + tasks > max_open  # refused only when it would not fit
            elif world.running:
                world.finish(rng.choice(list(world.running)))
            await settle()
            assert world.open_tasks() <= max_open
        while world.running or world.queued():
            assert world.running, "tasks are queued but none runs: a shard starves"
            world.finish(rng.choice(list(world.running)))
            await settle()
        assert world.peak <= max_running and world.open_tasks() == 0

    asyncio.run(scenario())


def test_one_shard_with_all_the_work_uses_the_whole_limit() -> None:
    async def scenario() -> None:
        world = World(shards=4, max_running=8, max_open=100)
        await world.create(1, 20)
        await settle()
        assert len(world.running) == 8

    asyncio.run(scenario())


def test_slots_held_by_a_busy_shard_go_to_a_waiting_one_as_its_tasks_end() -> None:
    async def scenario() -> None:
        world = World(shards=2, max_running=4, max_open=100)
        first = await world.create(0, 10)
        await settle()
        assert len(world.running) == 4
        second = await world.create(1, 4)
        await settle()
        for key in first[:4]:  # shard 0's tasks end; it gives back what is above a fair share
            world.finish(key)
            await settle()
        on_second = [k for k in world.running if k in second]
        assert len(world.running) == 4 and len(on_second) == 2  # shared fairly now

    asyncio.run(scenario())


def test_a_create_past_the_queue_limit_is_refused_exactly_even_when_slots_sit_elsewhere() -> None:
    async def scenario() -> None:
        world = World(shards=3, max_running=1, max_open=10)
        await world.create(0, 3)
        await world.create(1, 3)  # shard 0 holds unused open slots of its headroom: taken back
        with pytest.raises(LimitReached):
            await world.create(2, 5)
        await world.create(2, 4)
        assert world.open_tasks() == 10
        with pytest.raises(LimitReached):
            await world.create(0, 1)
        world.finish(next(iter(world.running)))
        await settle()
        await world.create(1, 1)

    asyncio.run(scenario())


def test_a_restarted_shard_holds_nothing_of_what_its_earlier_life_held() -> None:
    async def scenario() -> None:
        world = World(shards=2, max_running=2, max_open=100)
        account = "alice"
        away = 1 - home_of(account, 2)  # a shard that leases from another
        await world.create(away, 2)
        await settle()
        assert len(world.running) == 2
        world.running.clear()  # the shard dies with its tasks...
        world.schedulers[away] = Scheduler(away, "life-2", world._home, world._starter(away))
        await world.create(away, 2)  # ...and its next life gets the whole limit again
        await settle()
        assert len(world.running) == 2

    asyncio.run(scenario())


def test_a_restarted_home_rebuilds_its_ledger_from_what_the_shards_hold() -> None:
    async def scenario() -> None:
        world = World(shards=2, max_running=3, max_open=100)
        home = home_of("alice", 2)
        await world.create(1 - home, 5)
        await settle()
        assert len(world.running) == 3
        world.ledgers[home] = Ledger(2, world)  # the home restarts: its ledger is gone
        await world.create(home, 2)
        await settle()
        assert len(world.running) == 3  # the other shard's slots were counted, not granted twice

    asyncio.run(scenario())


def test_a_shard_owed_slots_by_a_home_that_restarted_asks_again_and_gets_them() -> None:
    async def scenario() -> None:
        world = World(shards=2, max_running=2, max_open=100)
        home = home_of("alice", 2)
        first = await world.create(home, 2)
        await world.create(1 - home, 2)  # waits: the home owes it slots
        await settle()
        world.ledgers[home] = Ledger(2, world)  # the home restarts, forgetting whom it owed
        for key in first:
            world.finish(key)
        await settle()
        assert not world.running
        Scheduler.ASK_AGAIN = 0.0
        try:
            world.schedulers[1 - home].ask_again()
            await settle()
        finally:
            Scheduler.ASK_AGAIN = 2.0
        assert len(world.running) == 2

    asyncio.run(scenario())
