"""How a shard hands its started tasks to Ray (dragon/actors/dispatch.py): bound to the
node with the most room, two per CPU, the rest held in order until room comes, and all of
it reported as demand for the autoscaler; on a cluster of one node, all to Ray."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from dragon.actors.dispatch import Dispatch, Slot, bundles

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def test_tasks_are_bound_to_the_node_with_the_most_room_left_two_per_cpu() -> None:
    async def main() -> list[str | None]:
        dispatch = Dispatch({"a": 1.0, "b": 2.0})
        return [(await dispatch.slot(1.0, [f"k{i}"])).node for i in range(6)]  # type: ignore[union-attr]

    nodes = run(main())
    assert nodes[:2] == ["b", "b"]  # b had room for 4, then 3, while a had 2
    assert nodes.count("a") == 2 and nodes.count("b") == 4


def test_what_does_not_fit_waits_in_order_until_a_task_ends() -> None:
    async def main() -> None:
        dispatch = Dispatch({"a": 1.0, "b": 1.0})
        bound = [await dispatch.slot(1.0, [f"b{i}"]) for i in range(4)]
        assert [s.node for s in bound] == ["a", "b", "a", "b"]  # type: ignore[union-attr]
        first = asyncio.ensure_future(dispatch.slot(1.0, ["w1"]))
        second = asyncio.ensure_future(dispatch.slot(0.5, ["w2"]))  # would fit nowhere either, and comes later
        await asyncio.sleep(0)
        assert not first.done() and not second.done() and dispatch.held == 2
        assert dispatch.demand() == {1.0: 5, 0.5: 1}  # started: four bound, two held
        dispatch.give_back(bound[1])  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert first.result() == Slot("b", 1.0) and not second.done()
        dispatch.give_back(bound[0])  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert second.result() == Slot("a", 0.5) and dispatch.held == 0
        assert dispatch.demand() == {1.0: 3, 0.5: 1}

    run(main())


def test_a_task_no_node_can_hold_goes_to_ray_unbound() -> None:
    async def main() -> Slot | None:
        return await Dispatch({"a": 2.0, "b": 2.0}).slot(4.0, ["big"])

    assert run(main()) == Slot(None, 4.0)


def test_on_one_node_tasks_go_to_ray_as_they_start_and_binding_begins_with_a_second_node() -> None:
    async def main() -> None:
        dispatch = Dispatch({"only": 1.0})
        alone = [await dispatch.slot(1.0, [f"k{i}"]) for i in range(5)]
        assert {s.node for s in alone} == {None} and dispatch.demand() == {}  # type: ignore[union-attr]  # Ray sees them
        dispatch.update({"only": 1.0, "new": 1.0})
        bound = await dispatch.slot(1.0, ["next"])
        assert bound is not None and bound.node is not None and dispatch.demand() == {1.0: 1}
        for slot in alone:
            dispatch.give_back(slot)  # type: ignore[arg-type]
        assert dispatch.demand() == {1.0: 1}

    run(main())


def test_held_tasks_are_demand_and_nodes_that_join_take_them() -> None:
    async def main() -> None:
        dispatch = Dispatch({"a": 1.0, "b": 1.0})
        bound = [await dispatch.slot(1.0, [f"b{i}"]) for i in range(4)]
        waiting = [asyncio.ensure_future(dispatch.slot(1.0, [f"k{i}"])) for i in range(3)]
        await asyncio.sleep(0)
        assert dispatch.held == 3 and dispatch.demand() == {1.0: 7}
        dispatch.update({"a": 1.0, "b": 1.0, "new": 1.0})
        await asyncio.sleep(0)
        assert [w.result().node for w in waiting[:2]] == ["new", "new"] and not waiting[2].done()  # type: ignore[union-attr]
        assert {s.node for s in bound if s is not None} == {"a", "b"}

    run(main())


def test_waiting_tasks_that_are_all_canceled_stop_waiting_and_the_queue_moves_on() -> None:
    async def main() -> None:
        dispatch = Dispatch({"a": 0.5, "b": 0.5})
        running = [await dispatch.slot(0.5, [f"r{i}"]) for i in range(4)]
        group = asyncio.ensure_future(dispatch.slot(0.5, ["c1", "c2"]))
        partly = asyncio.ensure_future(dispatch.slot(0.5, ["c3", "keep"]))
        await asyncio.sleep(0)
        canceled = {"c1", "c2", "c3"}
        dispatch.drop(lambda keys: all(k in canceled for k in keys))
        await asyncio.sleep(0)
        assert group.result() is None and not partly.done()  # one of its tasks still wants to run
        assert dispatch.demand() == {0.5: 5}
        dispatch.give_back(running[0])  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert partly.result() == Slot("a", 0.5)

    run(main())


@pytest.mark.parametrize("cpus", [0.25, 0.5])
def test_fractional_tasks_fill_the_nodes_exactly(cpus: float) -> None:
    async def main() -> tuple[list[str | None], bool]:
        dispatch = Dispatch({"a": 1.0, "b": 1.0})
        fit = [(await dispatch.slot(cpus, [str(i)])).node for i in range(int(4 / cpus))]  # type: ignore[union-attr]
        more = asyncio.ensure_future(dispatch.slot(cpus, ["more"]))
        await asyncio.sleep(0)
        return fit, more.done()

    fit, placed = run(main())
    assert fit.count("a") == fit.count("b") == int(2 / cpus) and not placed


def test_demand_becomes_bundles_with_fractions_packed_into_whole_cpus() -> None:
    assert bundles({}) == []
    assert bundles({0.25: 5, 0.5: 1}) == [{"CPU": 1.0}, {"CPU": 1.0}]  # 1.75 CPUs
    assert bundles({2.0: 2, 0.5: 2}) == [{"CPU": 2.0}, {"CPU": 2.0}, {"CPU": 1.0}]
    assert len(bundles({1.0: 50_000})) == 10_000
