"""Handing a shard's started tasks to Ray a node's worth at a time, and telling the
autoscaler what waits.

Why: a task left for Ray to place asks the owner's raylet for a worker lease. The owner
(the shard) lives on the head, so every such request goes through the head's raylet,
which spills it to a worker node; with two or more worker nodes and a queue, Ray's
pending lease requests bounce between raylets through the owner. Measured on two worker
nodes, that doubled the shard's CPU per task and made the head raylet's ten times
(docs/benchmarks.md, "Scaling over worker nodes"). A task bound to a node (soft node
affinity) asks that node's raylet directly, and a worker it leased is reused for the
next task bound there.

So, once the cluster has two nodes or more that run tasks (with one, its raylet is the
only one to ask, and Ray's own queue reuses leases best), a shard binds each task to the
node with the most room left by its own bound tasks, up to ``DEPTH`` times the node's
CPUs (one task waiting at the node per slot, so a slot that frees is taken at once,
without the shard's round trip), and keeps the tasks that do not fit in its own queue,
in order, until one of its tasks ends. A node that dies takes
its bound tasks' attempts with it (retried as any lost worker), and binding is soft: Ray
runs a task elsewhere if its node is gone. A task larger than any node goes to Ray
unbound, as demand Ray's autoscaler sees.

Ray's autoscaler does not count node-bound tasks, nor of course the shard's own queue,
as demand. So each shard reports what it has started (bound and held: :meth:`demand`)
and the control actor asks the autoscaler for all shards' sum
(``ray.autoscaler.sdk.request_resources``, dragon/actors/control.py), as Ray Data does for
the work its executor holds back.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """Where one Ray task of a shard goes: bound to ``node``, or placed by Ray (None)."""

    node: str | None
    cpus: float
    counted: bool = True  # in :meth:`Dispatch.demand` (bound, or held first)


@dataclass
class _Waiter:
    cpus: float
    keys: tuple[str, ...]
    given: asyncio.Future[Slot | None]


DEPTH = 2  # tasks bound to a node per CPU of it: one running, one waiting to


class Dispatch:
    def __init__(self, nodes: dict[str, float] | None = None):
        self._nodes: dict[str, float] = dict(nodes or {})  # node id -> CPUs for tasks
        self._bound: defaultdict[str, float] = defaultdict(float)
        self._waiting: deque[_Waiter] = deque()
        self._started: Counter[float] = Counter()  # CPUs of a task -> how many, bound or held

    @property
    def held(self) -> int:
        """Groups of tasks waiting here for room."""
        return len(self._waiting)

    def demand(self) -> dict[float, int]:
        """What this shard has started and not seen end, bound or held: CPUs of one Ray
        task -> how many (for the autoscaler)."""
        return {cpus: count for cpus, count in self._started.items() if count}

    def update(self, nodes: dict[str, float]) -> None:
        """The cluster's nodes now (joined or gone): more room may have come."""
        self._nodes = dict(nodes)
        self._wake()

    async def slot(self, cpus: float, keys: Iterable[str]) -> Slot | None:
        """Room for a Ray task of ``cpus``, in order of asking; None once all its tasks were
        dropped (canceled) while it waited."""
        if len(self._nodes) < 2 and not self._waiting:
            return Slot(None, cpus, counted=False)  # Ray's to place, and its autoscaler's to see
        self._started[cpus] += 1
        if not self._waiting:
            given = self._take(cpus)
            if given is not None:
                return given
        waiter = _Waiter(cpus, tuple(keys), asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            given = await waiter.given
        except BaseException:
            self._started[cpus] -= 1
            raise
        if given is None:
            self._started[cpus] -= 1
        return given

    def give_back(self, slot: Slot) -> None:
        """The Ray task of ``slot`` has ended."""
        if slot.counted:
            self._started[slot.cpus] -= 1
        if slot.node is not None:
            left = self._bound[slot.node] - slot.cpus
            if left > 1e-9:
                self._bound[slot.node] = left
            else:
                del self._bound[slot.node]
        self._wake()

    def drop(self, dropped: Callable[[tuple[str, ...]], bool]) -> None:
        """Waiting groups whose keys ``dropped`` says are all gone get None instead of room."""
        for waiter in [w for w in self._waiting if dropped(w.keys)]:
            self._waiting.remove(waiter)
            if not waiter.given.done():
                waiter.given.set_result(None)
        self._wake()

    def _take(self, cpus: float) -> Slot | None:
        room = {
            node: DEPTH * total - self._bound.get(node, 0.0)
            for node, total in self._nodes.items()
            if total >= cpus - 1e-9
        }
        node = max(room, key=room.__getitem__, default=None)
        if node is not None and room[node] >= cpus - 1e-9:
            self._bound[node] += cpus
            return Slot(node, cpus)
        if len(self._nodes) < 2 or cpus > max(self._nodes.values()) + 1e-9:
            return Slot(None, cpus)  # no node can hold it (or one node): Ray's autoscaler sees it
        return None

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting[0]
            if waiter.given.done():  # its caller went away
                self._waiting.popleft()
                continue
            given = self._take(waiter.cpus)
            if given is None:
                return
            self._waiting.popleft()
            waiter.given.set_result(given)


def bundles(demand: dict[float, int], most: int = 10_000) -> list[dict[str, float]]:
    """Resource bundles for the autoscaler (``request_resources``) of tasks' CPUs -> how
    many: fractional tasks packed into whole CPUs, at most ``most`` bundles."""
    whole = [
        {"CPU": cpus}
        for cpus, count in sorted(demand.items(), reverse=True)
        if cpus >= 1
        for _ in range(min(count, most))
    ]
    fractions = sum(cpus * count for cpus, count in demand.items() if cpus < 1)
    whole += [{"CPU": 1.0}] * math.ceil(fractions - 1e-9)
    return whole[:most]
