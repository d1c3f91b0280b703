"""Long-lived task actors for the task types that are worth keeping warm (``pooled`` in
their registry resources: beat tracking).

A stateless Ray task that asks for a GPU runs in whichever worker process Ray reuses:
every process that ever ran one builds a CUDA context of its own (hundreds of MB of GPU
memory, kept while the process idles or runs CPU work), one that never did pays torch's
import and that context on the spot, and a process reused for a task given another GPU
of the node goes on computing on the first (torch binds the device at its first CUDA
call). A pool member is an actor pinned to one GPU for its life: the one process of its
GPU's pooled work, holding its GPU share while it has work, with its imports, models and
CUDA context kept between tasks. Each GPU node gets one
member per GPU; with ``worker_pools = "all"`` nodes without a GPU get one that runs the
same code on CPU. Members hold ``pool_gpu_share`` of their GPU, so that stateless GPU
work (movie segments, NVDEC decodes) still finds room beside them.

Members are children of the control actor (one tree of worker processes, see
dragon/actors/control.py), started when a shard first has pooled work for their node,
and stopped after ``pool_idle_seconds`` without a task, so that an autoscaler can remove
an idle GPU node. A member that dies mid-task is restarted by Ray; the shard retries its
tasks as for any lost worker, sending none to that member before it is back. Task code
does not change: a member runs :func:`dragon.actors.worker.execute_records`, as the
stateless ``execute`` does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray
from ray.exceptions import ActorDiedError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dragon.actors.messages import Finished
from dragon.actors.worker import execute_records
from dragon.config import Settings
from dragon.status import TaskRecord

if TYPE_CHECKING:  # the movie modules import torch: only members that render load them
    from dragon.movie.render import Job
    from dragon.movie.segments import Inputs

log = logging.getLogger(__name__)

ACTOR_PREFIX = "dragon-pool-"
REFRESH = 5.0  # seconds a shard keeps its list of members before asking the control actor again
START_WAIT = 30.0  # seconds a new member has to be placed; else its node gets none for RETRY_AFTER
RETRY_AFTER = 60.0
REVIVE_WAIT = 15.0  # seconds a member that lost a task has to be back before the retry runs elsewhere


@ray.remote(max_restarts=-1, max_task_retries=0)
class PoolMember:
    """One long-lived worker of a node's pool: runs up to ``slots`` tasks at once (it is a
    threaded actor), with whatever they loaded kept for the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._last = time.monotonic()

    def ready(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def execute(self, records: list[TaskRecord], attempt: int, settings: Settings, shard: int) -> list[Finished]:
        with self._busy():
            return execute_records(records, attempt, settings, shard, pooled=True)

    def segment(self, job: Job, inputs: Inputs, first: int, stop: int, scratch_root: str) -> Iterator[int | bytes]:
        """A range of a movie's frames, for a ``video.create`` running elsewhere
        (dragon/movie/segments.py): compositing is GPU work, worth a kept CUDA context.
        A cancel (the movie canceled or failed) stops it at its next frame report: Ray
        ends a canceled generator at its next yield."""
        from dragon.movie.segments import segment_frames

        with self._busy():
            yield from segment_frames(job, inputs, first, stop, scratch_root)

    @contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last task ended; 0 while one runs."""
        with self._lock:
            return 0.0 if self._running else time.monotonic() - self._last


@dataclass
class _Member:
    node: str
    handle: ray.actor.ActorHandle
    ready: ray.ObjectRef
    since: float  # monotonic time of its start
    placed: bool = False


class Pools:
    """The control actor's book of pool members: started on demand, per alive node,
    stopped when idle or when their node is gone."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._members: dict[str, _Member] = {}
        self._refused: dict[str, float] = {}  # node -> when a member found no room there
        self._lock = threading.Lock()

    def members(self, wait: float = START_WAIT) -> list[tuple[str, ray.actor.ActorHandle]]:
        """(node, handle) of every placed member; starts missing ones and waits up to
        ``wait`` seconds for them to be placed. A member the cluster has no room for by
        then is given up (its node gets none for RETRY_AFTER): the work runs as stateless
        Ray tasks meanwhile, rather than wait for resources the member would hold, and no
        member placed later takes a GPU share that work is waiting for."""
        if self._settings.worker_pools == "off":
            return []
        with self._lock:
            alive = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
            for name in [name for name, m in self._members.items() if m.node not in alive]:
                del self._members[name]
            now = time.monotonic()
            for node, resources in alive.items():
                gpus = int(resources.get("GPU", 0))
                if gpus == 0 and self._settings.worker_pools != "all":
                    continue
                if now - self._refused.get(node, -RETRY_AFTER) < RETRY_AFTER:
                    continue
                for i in range(max(gpus, 1)):
                    name = f"{ACTOR_PREFIX}{node[:16]}-{i}"
                    if name not in self._members:
                        self._members[name] = self._start(name, node, gpu=gpus > 0)
            self._settle(wait)
            return [(m.node, m.handle) for m in self._members.values() if m.placed]

    def _settle(self, timeout: float, give_up: float | None = None) -> None:
        """Marks the started members that are placed now or within ``timeout``; gives up
        those still unplaced ``give_up`` seconds (default: ``timeout``) after their start."""
        starting = {m.ready: name for name, m in self._members.items() if not m.placed}
        if not starting:
            return
        placed, _ = ray.wait(list(starting), num_returns=len(starting), timeout=timeout)
        now = time.monotonic()
        for ref, name in starting.items():
            member = self._members[name]
            if ref in placed:
                member.placed = True
            elif now - member.since >= (timeout if give_up is None else give_up):
                log.warning("no room for pool member %s: its node runs pooled tasks as plain tasks", name)
                ray.kill(member.handle, no_restart=True)
                self._refused[member.node] = now
                del self._members[name]

    def _start(self, name: str, node: str, *, gpu: bool) -> _Member:
        settings = self._settings
        handle = PoolMember.options(  # type: ignore[attr-defined]  # added by @ray.remote
            name=name,
            namespace=settings.ray_namespace,
            get_if_exists=True,
            num_cpus=settings.pool_slots,
            num_gpus=settings.pool_gpu_share if gpu else 0,
            max_concurrency=settings.pool_slots,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote()
        return _Member(node, handle, handle.ready.remote(), time.monotonic())

    def reap(self) -> None:
        """Stop the members idle for ``pool_idle_seconds`` (their node's GPU and CPUs go
        back to the cluster; the next pooled task starts a member again)."""
        with self._lock:
            self._settle(0, give_up=START_WAIT)
            placed = {name: m for name, m in self._members.items() if m.placed}
            if not placed:
                return
            refs: dict[str, ray.ObjectRef] = {name: m.handle.idle_for.remote() for name, m in placed.items()}
            for name, ref in refs.items():
                try:
                    idle: float = ray.get(ref, timeout=10)
                except ActorDiedError:  # killed for good by someone else: started again on demand
                    del self._members[name]
                    continue
                except Exception:  # restarting, or slow: asked again next time
                    continue
                if idle >= self._settings.pool_idle_seconds:
                    ray.kill(placed[name].handle, no_restart=True)
                    del self._members[name]
                    log.info("stopped pool member %s after %.0f s without a task", name, idle)


class PoolView:
    """A shard's view of the pools: the members, asked of the control actor at most every
    REFRESH seconds while pooled tasks come, and the tasks this shard gave each."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._members: list[tuple[str, ray.actor.ActorHandle]] = []
        self._asked = -REFRESH
        self._given: dict[ray.actor.ActorHandle, int] = {}  # this shard's tasks running in each member
        self._lost: set[ray.actor.ActorHandle] = set()  # members that died under a task, maybe restarting
        self._gone: set[ray.actor.ActorHandle] = set()  # members found dead for good, until the book drops them

    async def pick(self, near: str | None) -> ray.actor.ActorHandle | None:
        """The member with the fewest of this shard's tasks, on node ``near`` if one is
        there; None when there is none (the task runs as a stateless Ray task)."""
        if self._settings.worker_pools == "off":
            return None
        for _ in range(2):  # a second look when the member picked first is not back
            if time.monotonic() - self._asked >= REFRESH:
                self._asked = time.monotonic()
                try:
                    self._members = await control_actor(self._settings).pool_members.remote()
                except Exception:
                    log.warning("could not list the pools' members", exc_info=True)
                    self._members = []
                else:  # members the book no longer lists need no watching
                    listed = {h for _, h in self._members}
                    self._lost &= listed
                    self._gone &= listed
            live = [(node, h) for node, h in self._members if h not in self._gone]
            candidates = [h for node, h in live if node == near] or [h for _, h in live]
            if not candidates:
                return None
            member = min(candidates, key=lambda h: self._given.get(h, 0))
            if member not in self._lost:
                return member
            back = await _restarted(member)
            if back:
                self._lost.discard(member)
                return member
            # Not back yet: no task for it until the list is asked for again. Gone for good
            # (stopped when idle, or killed by hand): the control actor starts a member in
            # its place when asked now, or once its reaper has found it dead.
            self._members = [(node, h) for node, h in self._members if h != member]
            if back is False:
                self._lost.discard(member)
                self._gone.add(member)
                self._asked = -REFRESH
        return None

    def given(self, handle: ray.actor.ActorHandle, delta: int) -> None:
        self._given[handle] = self._given.get(handle, 0) + delta
        if self._given[handle] <= 0:
            del self._given[handle]

    def forget(self, failed: ray.actor.ActorHandle) -> None:
        """A member died under a task: ask for the members again before the next pick, and
        give this one no task before it is back."""
        self._asked = -REFRESH
        self._lost.add(failed)


async def _restarted(member: ray.actor.ActorHandle) -> bool | None:
    """True once a member that died is back (Ray restarts it), False if it is gone for
    good (stopped when idle, perhaps as a task reached it), None if it is not back within
    REVIVE_WAIT. A task sent while it restarts would fail at once (ActorUnavailableError),
    wasting an attempt of the task: a call that Ray retries waits for the restart instead."""
    try:
        await asyncio.wait_for(member.ready.options(max_task_retries=-1).remote(), REVIVE_WAIT)
        return True
    except TimeoutError:
        return None
    except RayActorError:
        return False


def control_actor(settings: Settings) -> ray.actor.ActorHandle:
    """The handle of the control actor, which keeps the book of members."""
    from dragon.actors.control import ACTOR_NAME  # the control module imports the shards

    return ray.get_actor(ACTOR_NAME, namespace=settings.ray_namespace)
