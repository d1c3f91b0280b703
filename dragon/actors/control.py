"""The control actor: the one detached actor of the control plane, parent of the shards
and of the pools' members (dragon/actors/pool.py), and the holder of the journal's lease.

Ray binds the worker processes that run a task to the detached actor at the root of the
task's tree of owners, and does not lend them to another tree. Were every shard a
detached actor of its own, each would grow its own pool of worker processes on every
node, and a node would start new ones (and kill idle ones) whenever work moved from one
shard to another. So the shards are children of this actor: one tree, one pool.

If it dies, its shards die with it; Ray restarts it, it starts them again, and they queue
again what had not ended, as after any restart.

The lease. Two heads on one journal (an operator's mistake, a network split) would both
run its unfinished tasks. So this actor first takes the journal's lease (one row, with a
fencing token: dragon/journal/), waiting while another head holds a live one, and only
then starts its shards, whose journals it fences with the token: once another head has
taken the lease, every write of theirs that matters is refused. It renews the lease every
quarter of ``lease_seconds``. If it finds the lease taken, or could not renew it for three
quarters of ``lease_seconds`` (another head may take it once it lapses), it stops its
shards, and their running attempts die with them, before another head can start the same
tasks; it says why (:meth:`Control.lost`, the log; ``dragon serve`` exits).
docs/deployment.md.

Demand. Shards bind tasks to nodes and hold back what does not fit (dragon/actors/
dispatch.py), which Ray's autoscaler cannot see; every ``DEMAND_EVERY`` seconds this actor
asks each shard what it has started and asks the autoscaler for the sum.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray

from dragon.actors.dispatch import bundles
from dragon.actors.pool import START_WAIT, Pools
from dragon.actors.shard import TaskShard, actor_name
from dragon.config import Settings
from dragon.journal import Lease, open_journal
from dragon.placement import control_options

log = logging.getLogger(__name__)

ACTOR_NAME = "dragon-control"
RENEW_EVERY = 0.25  # of lease_seconds
# Of lease_seconds without a renewal, counted from when the last one that succeeded was
# asked for: the lease lapses a quarter later at the earliest, time to stop the shards.
STOP_AFTER = 0.75
DEMAND_EVERY = 2.0  # seconds between looks at what the shards have started


class LeaseHeldError(RuntimeError):
    """Another head holds the journal's lease and kept renewing it: this head may not start."""


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=8)  # type: ignore[call-overload]  # Ray's stubs lack actor options
class Control:
    def __init__(self, settings: Settings, holder: str):
        """``holder`` names this head in the lease; Ray restarts the actor with the same
        one, so a restarted control actor takes its own lease back without waiting."""
        self._settings, self._holder = settings, holder
        self._journal = open_journal(settings)
        self._shards: list[ray.actor.ActorHandle] = []
        self._token = 0  # the lease's fencing token, once this head holds it (tokens start at 1)
        self._refused: Lease | None = None  # the other head's lease, while waiting for it
        self._lost: str | None = None
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._renewing = threading.Lock()  # no renewal after a release, no acquisition after a refusal
        self._pools = Pools(settings)
        threading.Thread(target=self._keep_lease, name="lease", daemon=True).start()
        threading.Thread(target=self._reap_pools, name="pools", daemon=True).start()
        if settings.bind_tasks_to_nodes:
            threading.Thread(target=self._ask_for_demand, name="demand", daemon=True).start()

    def ready(self) -> list[dict[str, Any]]:
        """Once this head holds the lease and every shard has queued again its unfinished
        tasks. LeaseHeldError if another head still holds it after ``lease_wait_seconds``."""
        if not self._started.wait(self._settings.lease_wait_seconds):
            with self._renewing:  # either the lease was taken, or it never will be
                if not self._token:
                    self._stopping.set()
                    other = self._refused
                    raise LeaseHeldError(
                        f"LeaseHeldError: another head ({other.holder if other else 'unknown'}) holds the journal's "
                        f"lease and kept renewing it for {self._settings.lease_wait_seconds:g} s: two heads on one "
                        "journal would run the same tasks. Stop the other head (or wait until it is gone), then start "
                        "this one again."
                    )
            self._started.wait()
        if self._lost is not None:
            raise LeaseHeldError(self._lost)
        return ray.get([shard.ready.remote() for shard in self._shards])

    def lost(self) -> str | None:
        """Why this head stopped owning the queue, or None while it owns it."""
        return self._lost

    def release(self) -> None:
        """A clean stop: the lease lapses now, so the next head starts without waiting."""
        with self._renewing:
            self._stopping.set()
            if self._started.is_set() and self._lost is None:
                self._journal.release_lease(self._holder, self._token)

    def pool_members(self, wait: float = START_WAIT) -> list[tuple[str, ray.actor.ActorHandle]]:
        """(node, handle) of the pools' members, started where missing (dragon/actors/pool.py)."""
        return self._pools.members(wait)

    # internals

    def _reap_pools(self) -> None:
        every = min(self._settings.pool_idle_seconds / 4, 30.0)
        while not self._stopping.wait(every):
            try:
                self._pools.reap()
            except Exception:
                log.warning("could not stop idle pool members", exc_info=True)

    def _ask_for_demand(self) -> None:
        """Ask the autoscaler for what the shards have started (a standing request: the
        autoscaler keeps the cluster that large until the request changes). A shard that
        does not answer counts as having nothing started, until it answers again."""
        from ray.autoscaler.sdk import request_resources

        asked: list[dict[str, float]] = []
        while not self._stopping.wait(DEMAND_EVERY):
            if not self._started.is_set():
                continue
            total: dict[float, int] = {}
            answers: list[ray.ObjectRef] = [shard.demand.remote() for shard in self._shards]
            for answer in answers:
                try:
                    started: dict[float, int] = ray.get(answer, timeout=DEMAND_EVERY)
                    for cpus, count in started.items():
                        total[cpus] = total.get(cpus, 0) + count
                except Exception as exc:
                    log.warning("a shard did not say what it has started: %s", type(exc).__name__)
            wanted = bundles(total)
            if wanted != asked:
                try:
                    request_resources(bundles=wanted)
                    asked = wanted
                except Exception as exc:
                    log.warning("could not ask the autoscaler for %d CPU bundles: %s", len(wanted), type(exc).__name__)

    def _keep_lease(self) -> None:
        lease = self._acquire()
        if lease is None:
            return
        settings = self._settings
        placement = control_options(settings)
        self._shards = [
            TaskShard.options(  # type: ignore[attr-defined]  # added by @ray.remote
                name=actor_name(i), namespace=settings.ray_namespace, get_if_exists=True, **placement
            ).remote(settings, i, lease.token)
            for i in range(settings.shards)
        ]
        self._started.set()
        log.warning("head %s holds the journal's lease (token %d)", self._holder, lease.token)
        renewed = time.monotonic()  # when the last renewal that succeeded was asked for
        while not self._stopping.wait(settings.lease_seconds * RENEW_EVERY):
            asked = time.monotonic()
            try:
                with self._renewing:
                    if self._stopping.is_set():
                        return
                    held: bool | None = self._journal.renew_lease(self._holder, self._token, settings.lease_seconds)
            except Exception as exc:
                log.warning("could not renew the journal's lease: %s", type(exc).__name__)
                held = None
            if held:
                renewed = asked
            elif held is False:
                return self._lose("another head took the journal's lease")
            elif time.monotonic() - renewed > settings.lease_seconds * STOP_AFTER:
                return self._lose(
                    f"could not renew the journal's lease for {settings.lease_seconds * STOP_AFTER:g} s "
                    "(the journal is unreachable), and another head may take it once it lapses"
                )

    def _acquire(self) -> Lease | None:
        """The lease, once free (waiting while another head holds it); None if stopped first."""
        every = self._settings.lease_seconds * RENEW_EVERY
        while not self._stopping.is_set():
            try:
                with self._renewing:
                    if self._stopping.is_set():  # refused meanwhile: never take it now
                        return None
                    lease = self._journal.acquire_lease(self._holder, self._settings.lease_seconds)
                    if lease.acquired:
                        self._token = lease.token
            except Exception as exc:
                log.warning("could not ask the journal for its lease: %s", type(exc).__name__)
                self._stopping.wait(1.0)
                continue
            if lease.acquired:
                return lease
            self._refused = lease
            log.warning(
                "waiting for the journal's lease: head %s holds it (token %d) for %.1f s more unless it renews it",
                lease.holder,
                lease.token,
                lease.expires_in,
            )
            self._stopping.wait(min(every, lease.expires_in + 0.05))
        return None

    def _lose(self, reason: str) -> None:
        """Stop the shards, with their running attempts, and say why."""
        self._lost = (
            f"this head ({self._holder}, token {self._token}) stopped running tasks: {reason}. Its "
            "shards are stopped; the head that holds the lease runs the tasks."
        )
        log.error(self._lost)
        for shard in self._shards:
            ray.kill(shard, no_restart=True)
