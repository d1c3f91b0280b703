"""Account limits across shards: each shard leases slots from the account's home shard.

An account's tasks may be owned by any shard, yet its limits are the account's:
``max_concurrent_tasks`` tasks running and ``max_queued_tasks`` queued or running, in
all shards together. The account's *home* (``home_of(account)``) keeps the ledger; the
other shards hold leases of *run* slots (one per running task) and *open* slots (one per
queued or running task) and use them with no message at all, until they need more.

- A shard asks its home for what it lacks (``Ledger.acquire``). A create that would
  pass ``max_queued_tasks`` is refused there, exactly: before refusing, the home takes
  back the open slots other shards hold unused.
- When run slots run out while a shard still has work queued, the home records the
  want and asks the holders above a fair share to give slots back as their tasks end;
  freed slots go to the shards that wait (``Slots.target``).
- Every change of a lease is a delta: grants count at the home when sent, give-backs
  when received, so the home's view never holds less than the shards do and it never
  grants past a limit. A shard's restart (a new *incarnation*) drops what it held.

``Slots`` (one per account on each shard) and ``Ledger`` (the home's side) are plain
Python, so these rules are unit-tested without Ray; the shard actor wires them up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from dragon.actors.messages import Holding
from dragon.status import TaskRecord

log = logging.getLogger(__name__)

OPEN_HEADROOM = 64  # open slots asked for beyond a create's need, so the next creates stay local


def home_of(account: str, shards: int) -> int:
    """The shard that keeps an account's ledger."""
    return int.from_bytes(hashlib.sha256(account.encode()).digest()[:4], "big") % shards


@dataclass
class Slots:
    """One account's tasks on one shard, and the slots it holds for them."""

    max_running: int
    max_open: int
    run_lease: int = 0
    open_lease: int = 0
    running: int = 0
    reserved: int = 0  # admitted by a create not yet written to the journal
    pending: deque[TaskRecord] = field(default_factory=deque)
    target: int | None = None  # the home asks this shard to hold at most this many run slots
    asking: bool = False  # run slots asked for and not all granted yet

    @property
    def open(self) -> int:
        return len(self.pending) + self.running + self.reserved

    def _cap(self) -> int:
        return min(self.max_running, self.target if self.target is not None else self.max_running)

    def can_start(self) -> bool:
        return bool(self.pending) and self.running < min(self.run_lease, self._cap())

    def wanted(self) -> int:
        """Run slots this shard lacks for the queued tasks it could start."""
        return max(0, min(len(self.pending) + self.running, self._cap()) - self.run_lease)

    def run_wanted(self) -> int:
        """Run slots to ask for now (none while an ask is unanswered)."""
        return 0 if self.asking else self.wanted()

    def open_needed(self, tasks: int) -> int:
        return max(0, self.open + tasks - self.open_lease)

    def excess(self) -> int:
        """Run slots to give back now: while the home shares the account's slots out (a
        target), those above the target and those no task here needs; busy ones stay."""
        if self.target is None:
            return 0
        keep = max(self.running, min(self.target, self.running + len(self.pending)))
        return max(0, self.run_lease - keep)

    def shed(self) -> int:
        """Give back the excess; returns how many run slots went."""
        back = self.excess()
        self.run_lease -= back
        return back

    def give_back_unused(self, *, run: bool, open: bool) -> tuple[int, int]:
        """Hand back the slots no task uses now: (run, open) given back."""
        run_back = max(0, self.run_lease - self.running) if run else 0
        open_back = max(0, self.open_lease - self.open) if open else 0
        self.run_lease -= run_back
        self.open_lease -= open_back
        return run_back, open_back


class Peers(Protocol):
    """How a home reaches the shards (Ray calls in the actor, plain calls in tests).
    Give-backs answer a delta with the shard's incarnation."""

    async def give_back_unused(self, shard: int, account: str, *, run: bool, open: bool) -> Holding: ...

    async def set_target(self, shard: int, account: str, target: int | None) -> Holding: ...

    def granted(self, shard: int, account: str, run: int, *, more: bool) -> None:
        """Tell ``shard`` it holds ``run`` more run slots; ``more``: the home still owes it some."""
        ...

    async def holding(self, shard: int, account: str) -> Holding:
        """What ``shard`` holds now (to rebuild a ledger after the home restarted)."""
        ...


class Home(Protocol):
    """An account's home as a shard sees it: the local Ledger, or another shard's."""

    async def acquire(
        self,
        account: str,
        max_running: int,
        max_open: int,
        asker: Holding,
        open_needed: int = 0,
        *,
        force: bool = False,
    ) -> tuple[int, int]: ...

    def release(self, account: str, giver: Holding, wants: int | None = None) -> None: ...


class LimitReached(Exception):
    """The open slots an account's create needs are not free in any shard."""


@dataclass
class _Account:
    held: dict[int, list[int]] = field(default_factory=dict)  # shard -> [run, open]
    incarnations: dict[int, str] = field(default_factory=dict)
    wanting: dict[int, int] = field(default_factory=dict)  # shard -> run slots it still waits for
    shrunk: set[int] = field(default_factory=set)
    max_running: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    built: bool = False

    def total(self, i: int) -> int:
        return sum(h[i] for h in self.held.values())

    def note(self, shard: int, incarnation: str) -> list[int]:
        """The slots ``shard`` holds; a new incarnation holds nothing of the old one's."""
        if self.incarnations.get(shard) != incarnation:
            self.incarnations[shard] = incarnation
            self.held[shard] = [0, 0]
            self.wanting.pop(shard, None)
        return self.held.setdefault(shard, [0, 0])


class Ledger:
    """The home's side: how many slots of each account each shard holds."""

    def __init__(self, shards: int, peers: Peers):
        self._shards = shards
        self._peers = peers
        self._accounts: dict[str, _Account] = {}

    async def acquire(
        self,
        account: str,
        max_running: int,
        max_open: int,
        asker: Holding,
        open_needed: int = 0,
        *,
        force: bool = False,
    ) -> tuple[int, int]:
        """Grant up to ``asker.run`` run slots, and ``open_needed`` open slots plus up
        to ``asker.open`` more; returns (run, open) granted. LimitReached when the open
        slots needed are not free (``force``: grant them anyway, for tasks accepted
        before a restart). A shard granted fewer run slots than it asked is owed the rest."""
        book = await self._book(account)
        book.max_running = max_running
        async with book.lock:
            book.note(asker.shard, asker.incarnation)
            opened = 0
            if open_needed or asker.open:
                if max_open - book.total(1) < open_needed and not force:
                    await self._reclaim(account, book, asker.shard, run=False)
                    if max_open - book.total(1) < open_needed:
                        raise LimitReached(account)
                opened = open_needed + min(asker.open, max(0, max_open - book.total(1) - open_needed))
            run = 0
            if asker.run:
                if max_running - book.total(0) < asker.run:
                    await self._reclaim(account, book, asker.shard, run=True)
                run = max(0, min(asker.run, max_running - book.total(0)))
                if run < asker.run:
                    book.wanting[asker.shard] = asker.run - run
                    self._rebalance(account, book, max_running)
                else:
                    book.wanting.pop(asker.shard, None)
            held = book.note(asker.shard, asker.incarnation)
            held[0] += run
            held[1] += opened
            self._settle(account, book)
            return run, opened

    def release(self, account: str, giver: Holding, wants: int | None = None) -> None:
        """``giver`` gave back slots (a delta) and, with ``wants``, says how many run slots
        it still waits for: free them, and grant them to shards that wait."""
        book = self._accounts.get(account)
        if book is None:
            return
        held = book.note(giver.shard, giver.incarnation)
        held[0] = max(0, held[0] - giver.run)
        held[1] = max(0, held[1] - giver.open)
        if wants is not None:
            if wants:
                book.wanting[giver.shard] = wants
            else:
                book.wanting.pop(giver.shard, None)
        self._settle(account, book)

    # internals

    async def _book(self, account: str) -> _Account:
        book = self._accounts.setdefault(account, _Account())
        if not book.built:
            async with book.lock:
                if not book.built:  # after a restart of this home: ask what the shards hold
                    for shard in range(self._shards):
                        try:
                            holding = await self._peers.holding(shard, account)
                        except Exception:  # a shard restarting holds nothing
                            log.warning("shard %d did not say what it holds of %s", shard, account)
                            continue
                        book.incarnations[shard] = holding.incarnation
                        book.held[shard] = [holding.run, holding.open]
                    book.shrunk = set(range(self._shards))  # targets the last life set are unknown
                    book.built = True
        return book

    async def _reclaim(self, account: str, book: _Account, asker: int, *, run: bool) -> None:
        """Take back the run (or open) slots the other shards hold unused."""
        for shard, held in list(book.held.items()):
            if shard != asker and held[0 if run else 1]:
                await self._call(
                    account, book, shard, self._peers.give_back_unused(shard, account, run=run, open=not run)
                )

    async def _call(self, account: str, book: _Account, shard: int, call: Awaitable[Holding]) -> None:
        try:
            back = await call
        except Exception:  # unreachable: what it held is lost with it
            log.warning("shard %d did not give back slots of %s", shard, account)
            book.held.pop(shard, None)
            book.incarnations.pop(shard, None)
            return
        self.release(account, back)

    def _rebalance(self, account: str, book: _Account, max_running: int) -> None:
        """Shards wait for run slots: every holder gets a fair share as its target, and
        gives back what is above it, or idle, as its tasks end."""
        sharing = {s for s, h in book.held.items() if h[0]} | set(book.wanting)
        fair = max(1, max_running // max(1, len(sharing)))
        for shard in sharing:
            book.shrunk.add(shard)
            asyncio.ensure_future(self._call(account, book, shard, self._peers.set_target(shard, account, fair)))

    def _settle(self, account: str, book: _Account) -> None:
        """Free run slots go to the shards that wait; once none waits, targets are lifted."""
        freed = book.max_running - book.total(0)
        for shard in list(book.wanting):
            if freed <= 0:
                return
            grant = min(freed, book.wanting[shard])
            freed -= grant
            book.wanting[shard] -= grant
            if not book.wanting[shard]:
                del book.wanting[shard]
            book.held.setdefault(shard, [0, 0])[0] += grant
            self._peers.granted(shard, account, grant, more=shard in book.wanting)
        if not book.wanting and book.shrunk:  # nobody waits any more: holders may grow again
            for shard in book.shrunk:
                asyncio.ensure_future(self._call(account, book, shard, self._peers.set_target(shard, account, None)))
            book.shrunk.clear()


class Scheduler:
    """A shard's side: its accounts' queues, started within the slots the shard holds.

    ``start(record)`` begins a task (the shard runs it); ``finished(account)`` must be
    called when it ends. ``homes(account)`` is the account's home.
    """

    ASK_AGAIN = 2.0  # seconds after which run slots still owed are asked for again (a lost grant)

    def __init__(self, shard: int, incarnation: str, homes: Callable[[str], Home], start: Callable[[TaskRecord], None]):
        self.shard = shard
        self.incarnation = incarnation
        self._homes = homes
        self._start = start
        self._slots: dict[str, Slots] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._asked: dict[str, float] = {}

    def slots(self, account: str) -> Slots | None:
        return self._slots.get(account)

    def limits(self, account: str, max_running: int, max_open: int) -> Slots:
        """The account's slots here, with its current limits."""
        slots = self._slots.get(account)
        if slots is None:
            slots = self._slots[account] = Slots(max_running, max_open)
        slots.max_running, slots.max_open = max_running, max_open
        return slots

    async def admit(self, account: str, tasks: int, *, force: bool = False) -> None:
        """Reserve open slots for ``tasks`` new tasks (LimitReached if the account has none
        left); then ``enqueue`` them, or ``unreserve`` if they could not be written."""
        slots = self._slots[account]
        async with self._locks.setdefault(account, asyncio.Lock()):
            need = slots.open_needed(tasks)
            if need:
                asker = Holding(self.shard, self.incarnation, open=OPEN_HEADROOM)
                _, opened = await self._homes(account).acquire(
                    account, slots.max_running, slots.max_open, asker, need, force=force
                )
                slots.open_lease += opened
            slots.reserved += tasks

    def reserve(self, account: str, tasks: int) -> None:
        """Count ``tasks`` as open without asking the home: recovered tasks that wait for
        others (dragon/pipelines.py) were admitted before the restart."""
        self._slots[account].reserved += tasks

    def unreserve(self, account: str, tasks: int) -> None:
        self._slots[account].reserved -= tasks

    def enqueue(self, account: str, records: list[TaskRecord], reserved: int) -> None:
        slots = self._slots[account]
        slots.reserved -= reserved
        slots.pending.extend(records)
        self.pump(account)

    def pump(self, account: str) -> None:
        slots = self._slots[account]
        while slots.can_start():
            slots.running += 1
            self._start(slots.pending.popleft())
        want = slots.run_wanted()
        if want:
            slots.asking = True
            self._asked[account] = time.monotonic()
            asyncio.ensure_future(self._ask(account, want))

    def finished(self, account: str) -> None:
        slots = self._slots[account]
        slots.running -= 1
        self._shed(account, slots)
        self.pump(account)

    def cancel(self, account: str, key: str) -> bool:
        """Take a queued task out of its queue; False if it is not queued here."""
        slots = self._slots.get(account)
        if slots is None:
            return False
        for record in slots.pending:
            if record.key == key:
                slots.pending.remove(record)
                return True
        return False

    def ask_again(self) -> None:
        """Queues stalled for a while ask for run slots again: a grant, or its home, was lost."""
        now = time.monotonic()
        for account, slots in self._slots.items():
            if slots.pending and not slots.can_start() and now - self._asked.get(account, 0.0) > self.ASK_AGAIN:
                slots.asking = False
                self.pump(account)

    # what homes call

    def give_back_unused(self, account: str, *, run: bool, open: bool) -> Holding:
        slots = self._slots.get(account)
        back = slots.give_back_unused(run=run, open=open) if slots else (0, 0)
        return Holding(self.shard, self.incarnation, *back)

    def set_target(self, account: str, target: int | None) -> Holding:
        slots = self._slots.get(account)
        if slots is None:
            return Holding(self.shard, self.incarnation)
        slots.target = target
        back = slots.shed()
        self.pump(account)
        return Holding(self.shard, self.incarnation, run=back)

    def granted(self, account: str, run: int, *, more: bool) -> None:
        slots = self._slots.get(account)
        if slots is None:  # nothing here wants them: hand them back
            self._homes(account).release(account, Holding(self.shard, self.incarnation, run=run), 0)
            return
        slots.run_lease += run
        slots.asking = more
        self.pump(account)
        self._shed(account, slots)

    def holding(self, account: str) -> Holding:
        slots = self._slots.get(account)
        return (
            Holding(self.shard, self.incarnation, slots.run_lease, slots.open_lease)
            if slots
            else Holding(self.shard, self.incarnation)
        )

    # internals

    def _shed(self, account: str, slots: Slots) -> None:
        """Give back run slots the home is sharing out and this shard does not need."""
        back = slots.shed()
        if back:
            wants = slots.wanted()
            slots.asking = wants > 0  # the home now knows what this shard waits for
            self._homes(account).release(account, Holding(self.shard, self.incarnation, run=back), wants)

    async def _ask(self, account: str, want: int) -> None:
        slots = self._slots[account]
        asker = Holding(self.shard, self.incarnation, run=want)
        try:
            run, _ = await self._homes(account).acquire(account, slots.max_running, slots.max_open, asker)
        except Exception:
            log.warning("could not ask for run slots of %s", account, exc_info=True)
            slots.asking = False
            return
        slots.run_lease += run
        if run >= want:
            slots.asking = False
        self.pump(account)
