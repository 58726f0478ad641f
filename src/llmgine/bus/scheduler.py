"""The durable scheduler: scheduled events kept in a store, safely for many bus instances.

- **Write-through.** `schedule` returns once the event's row is committed
  (concurrent callers share a transaction), or after ``publish_timeout`` if
  the database is failing; the event then fires from memory and the writer
  keeps retrying.
- **Claims under a lease.** Events due within ``horizon`` are claimed for
  this instance (its *owner* id) for ``lease``; the claim runs after each
  publish and every ``poll_interval``; leases are renewed every third of the
  lease; an event whose lease was lost is dropped from this instance. Events
  due later stay in the database, so memory and CPU do not grow with them.
  Claims and renewals never overlap, and each renewal reconciles: a row the
  database says this instance holds but memory does not know (a claim whose
  answer was lost) is released, so no row stays owned by an instance that
  forgot it.
- **Fenced.** Each held event carries a deadline on the monotonic clock: the
  start of the claim or renewal that last confirmed it, plus the lease less a
  margin. An event due past its deadline (the process was frozen, or renewals
  failed) is not fired blind: it waits for a renewal, fires if the lease is
  still this instance's, and is dropped if not.
- **On the store's clock.** Due instants and leases are measured on the
  store's clock (`ScheduledEventStore.now`; PostgreSQL's own clock for the SQL
  store). The scheduler measures its process clock against it at start and at
  every renewal, so a process whose clock is off fires neither early nor
  with stolen leases.
- **On time.** Claimed events wait in a `TimerHeap` and fire at their due
  instant; once the bus has run their handlers they are completed (deleted),
  in batches. Delivery is at-least-once: an instance that dies after a
  delivery but before its completion commits leaves the event to be
  delivered again, with the same ``event_id``, after its lease expires. An
  instance never delivers an event twice itself, even if it claims it again.
- **Misfires.** An event later than ``misfire_grace`` when it fires is not
  delivered; it is completed, logged, counted and reported to ``on_missed``.
- **Stop.** `stop` flushes pending writes and completions and releases every
  lease, so the next start, here or elsewhere, claims the events at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmgine.bus.timers import TimerHeap
from llmgine.database._faultlog import FaultLog
from llmgine.database.instants import to_utc, utc_now
from llmgine.database.store import ScheduledEventStore
from llmgine.database.writer import Writer
from llmgine.errors import UnstorableEventError
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)

COMPLETE_INTERVAL_S = 0.05
CLAIM_BATCH = 1000
LEASE_MARGIN = 0.1
"""The share of a lease kept in hand: an event fires only within the first 90% of the
lease its last claim or renewal started (covers clock-rate differences and latency)."""
RETRY_S = 1.0
"""Seconds between renewals while an event waits for its lease to be confirmed."""
SKEW_WARNING = timedelta(seconds=1)
_STORE_FAULTS = (Exception,)
"""A store call that raises anything is a database fault to report, never a reason for a
background loop to die or for `publish` to raise (a third-party store may raise anything)."""


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    """How the durable scheduler trades latency, failover time and database load."""

    lease: timedelta = timedelta(seconds=30)
    """How long a claim lasts without renewal: the failover time after a crash."""
    horizon: timedelta = timedelta(minutes=1)
    """How far ahead events are claimed into memory."""
    poll_interval: float = 2.0
    """Seconds between claims when nothing wakes the scheduler (finds other buses' events)."""
    publish_timeout: float = 5.0
    """Seconds `schedule` waits for a commit before falling back to memory."""
    misfire_grace: timedelta | None = None
    """Events later than this when they fire are dropped (None: always deliver)."""

    def __post_init__(self) -> None:
        if self.lease <= timedelta(0) or self.horizon < timedelta(0):
            raise ValueError("lease must be positive and horizon not negative")
        if self.poll_interval <= 0 or self.publish_timeout < 0:
            raise ValueError("poll_interval must be positive and publish_timeout not negative")


@dataclass
class SchedulerStats:
    """Counters since the scheduler started."""

    scheduled: int = 0
    committed: int = 0
    memory_only: int = 0
    claimed: int = 0
    fired: int = 0
    completed: int = 0
    missed: int = 0
    lost_leases: int = 0
    fenced: int = 0
    """Events due after their lease's deadline passed, held back until a renewal answered."""
    released_unknown: int = 0
    """Rows held in the database but unknown in memory (a claim's answer lost), released."""


def new_owner_id() -> str:
    """An owner id unique to this bus instance: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class DurableScheduler:
    """Scheduled events through a `ScheduledEventStore`; see the module docstring."""

    def __init__(
        self,
        store: ScheduledEventStore,
        *,
        fire: Callable[[ScheduledEvent], None],
        on_missed: Callable[[ScheduledEvent, timedelta], None],
        settings: SchedulerSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.settings = settings or SchedulerSettings()
        self.owner = new_owner_id()
        self.stats = SchedulerStats()
        self._fire_event = fire
        self._on_missed = on_missed
        self._process_clock = clock
        self._offset = timedelta(0)
        """The store's clock minus the process clock, as last measured (never overstated)."""
        self._timers = TimerHeap(self._fire, clock=self.now)
        self._writer = Writer(scheduled=store, name="llmgine-scheduler-writer")
        self._faults = FaultLog(logger)
        self._waiting: dict[str, ScheduledEvent] = {}
        """Events in the timer heap, by id."""
        self._claimed: set[str] = set()
        """Ids this instance holds a lease on (waiting or being delivered)."""
        self._deadline: dict[str, float] = {}
        """For held ids: until when (loop time) their lease is known to be this instance's."""
        self._unconfirmed: dict[str, ScheduledEvent] = {}
        """Events due after their deadline: they fire once a renewal confirms the lease."""
        self._unsaved: set[str] = set()
        """Ids published here whose row is not committed yet (fire from memory)."""
        self._fired: set[str] = set()
        """Ids fired here and not completed yet: never fired here again, even if re-claimed."""
        self._finished: set[str] = set()
        """Fired ids whose handlers have run: complete them once held."""
        self._to_complete: set[str] = set()
        self._in_flight: deque[tuple[float, asyncio.Future[bool], ScheduledEvent]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._lease_lock = asyncio.Lock()
        """Claims and renewals one at a time: a renewal's answer is then never older than a
        claim it is compared with."""
        self._claim_unsure = False
        """A claim failed: it may have committed, so the next renewal must reconcile."""
        self._wake = asyncio.Event()
        self._renew_now = asyncio.Event()
        self._completions = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._waiting) + len(self._unconfirmed)

    def now(self) -> datetime:
        """The current instant on the store's clock, as this process best knows it."""
        return self._process_clock() + self._offset

    @property
    def clock_offset(self) -> timedelta:
        """The store's clock minus this process's, as measured (zero within measurement)."""
        return self._offset

    def waiting(self) -> list[ScheduledEvent]:
        """The events held in memory, due soonest first."""
        events = [*self._waiting.values(), *self._unconfirmed.values()]
        return sorted(events, key=lambda e: to_utc(e.scheduled_time))

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim what is due within the horizon, then keep claiming, renewing, completing."""
        loop = asyncio.get_running_loop()
        await self._measure_clock()
        self._timers.start(loop)
        await self._claim()
        self._tasks = [
            loop.create_task(self._claim_loop(), name="llmgine-claims"),
            loop.create_task(self._renew_loop(), name="llmgine-renewals"),
            loop.create_task(self._complete_loop(), name="llmgine-completions"),
        ]

    def pause(self) -> None:
        """Stop claiming and firing; events still waiting stay held until `stop`.

        The background loops finish the store call they are in (a store call is
        never cancelled halfway: a claim committed after the release would hold
        its events for a whole lease) and then end; `stop` waits for them.
        """
        self._stopping.set()
        self._wake.set()
        self._renew_now.set()
        self._completions.set()
        self._timers.drain()

    async def stop(self, flush_timeout: float) -> None:
        """Flush writes and completions, release every lease, and end the writer."""
        self.pause()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        await asyncio.to_thread(self._writer.flush, flush_timeout)
        await self._complete()
        try:
            released = await asyncio.to_thread(self.store.release, self.owner)
            logger.debug("released %d scheduled events", released)
        except _STORE_FAULTS as exc:
            self._faults.report("release", "leases not released (they expire): %s", exc)
        if self._unsaved:
            logger.error(
                "%d scheduled events published during a database outage were never saved; "
                "they are lost when this process exits",
                len(self._unsaved),
            )
        await asyncio.to_thread(self._writer.stop, 0.0 if self._unsaved else flush_timeout)
        self._waiting.clear()
        self._unconfirmed.clear()
        self._claimed.clear()
        self._deadline.clear()

    def abandon(self, flush_timeout: float) -> None:
        """`stop` for when no event loop can run it any more (an uncaught exception ended
        ``asyncio.run``): save pending writes, complete what was delivered, release every
        lease, end the writer. Blocks; never raises for a store fault."""
        self._writer.flush(flush_timeout)
        ids, self._to_complete = self._to_complete, set()
        try:
            if ids:
                self.store.complete(self.owner, ids)
            released = self.store.release(self.owner)
            logger.debug("released %d scheduled events", released)
        except _STORE_FAULTS as exc:
            self._faults.report("release", "leases not released (they expire): %s", exc)
        self._writer.stop(flush_timeout)

    # --- scheduling ----------------------------------------------------------------------

    async def schedule(self, event: ScheduledEvent, due: datetime | None = None) -> None:
        """Store ``event``; return once committed, or after ``publish_timeout`` (then from memory).

        ``due`` is the event's due instant, if the caller has computed it already.
        Raises `UnstorableEventError` if the store refuses the event itself.
        """
        self.stats.scheduled += 1
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._in_flight.append((loop.time() + self.settings.publish_timeout, waiter, event))
        self._writer.submit_scheduled_soon(
            [event], functools.partial(self._committed, waiter, event)
        )
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._in_flight[0][0], self._time_out)
        try:
            saved = await waiter
        except UnstorableEventError:
            raise
        except _STORE_FAULTS as exc:  # the writer stopped: keep the event alive here
            self._faults.report("schedule", "scheduled event kept in memory only: %s", exc)
            self._keep_in_memory(event)
            return
        if saved:
            self.stats.committed += 1
            due = to_utc(event.scheduled_time) if due is None else due
            if due <= self.now() + self.settings.horizon:
                self._wake.set()

    def _committed(
        self, waiter: asyncio.Future[bool], event: ScheduledEvent, error: BaseException | None
    ) -> None:
        """The writer settled ``event`` (runs on the loop)."""
        if not waiter.done():
            if error is None:
                waiter.set_result(True)
            else:
                waiter.set_exception(error)
        elif error is None:  # committed after `publish` had given up waiting
            self._saved(event.event_id)
        while self._in_flight and self._in_flight[0][1].done():
            self._in_flight.popleft()

    def _time_out(self) -> None:
        """The watchdog: publishes past ``publish_timeout`` return, their events kept in memory.

        One timer for all publishes in flight (they finish in the order they
        started), instead of one per publish.
        """
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._in_flight and (self._in_flight[0][1].done() or self._in_flight[0][0] <= now):
            _, waiter, event = self._in_flight.popleft()
            if not waiter.done():
                self._keep_in_memory(event)
                waiter.set_result(False)
        if self._in_flight:
            self._watchdog = loop.call_at(self._in_flight[0][0], self._time_out)

    def _keep_in_memory(self, event: ScheduledEvent) -> None:
        self._faults.report(
            "slow",
            "scheduled event %s not committed within %.1f s; it will fire from memory "
            "while the writer keeps retrying",
            event.event_id,
            self.settings.publish_timeout,
        )
        self.stats.memory_only += 1
        self._unsaved.add(event.event_id)
        self._wait_for(event)

    def _saved(self, event_id: str) -> None:
        self._unsaved.discard(event_id)
        self._wake.set()  # claim it: if it was delivered meanwhile, the claim completes it

    def _wait_for(self, event: ScheduledEvent) -> None:
        if event.event_id not in self._waiting:
            self._waiting[event.event_id] = event
            self._timers.add(event)

    # --- firing and completing -------------------------------------------------------------

    def _fire(self, event: ScheduledEvent) -> None:
        event_id = event.event_id
        if self._waiting.pop(event_id, None) is None:
            return  # its lease was lost meanwhile
        if event_id in self._claimed and self._loop_time() >= self._deadline.get(event_id, 0.0):
            # The lease may have expired (a frozen process, failing renewals): another
            # instance may hold the event now. Fire only once a renewal says it is ours.
            self.stats.fenced += 1
            self._unconfirmed[event_id] = event
            self._renew_now.set()
            return
        self._deliver(event)

    def _deliver(self, event: ScheduledEvent) -> None:
        if event.event_id in self._fired:
            return  # fired here already (claimed again meanwhile): never twice from one bus
        self._fired.add(event.event_id)
        late = self.now() - to_utc(event.scheduled_time)
        grace = self.settings.misfire_grace
        if grace is not None and late > grace:
            self.stats.missed += 1
            logger.warning(
                "scheduled event %s (%s) missed: %.3f s late, grace %.3f s",
                event.event_id,
                type(event).__name__,
                late.total_seconds(),
                grace.total_seconds(),
            )
            self.delivered(event)
            self._on_missed(event, late)
            return
        self.stats.fired += 1
        self._fire_event(event)

    def delivered(self, event: ScheduledEvent) -> None:
        """The bus ran ``event``'s handlers: complete it (once held, if not yet saved)."""
        event_id = event.event_id
        if event_id not in self._fired:
            return  # not one of the scheduler's (an event published already due)
        self._finished.add(event_id)
        if event_id in self._claimed:
            self._to_complete.add(event_id)
            self._completions.set()

    async def _complete(self) -> None:
        if not self._to_complete:
            return
        ids, self._to_complete = self._to_complete, set()
        try:
            done = await asyncio.to_thread(self.store.complete, self.owner, ids)
        except _STORE_FAULTS as exc:
            self._faults.report("complete", "completions not written, retrying: %s", exc)
            self._to_complete |= ids
            self._completions.set()  # retried after the batch window
            return
        self._faults.reset("complete")
        self._claimed -= ids
        for event_id in ids:
            self._deadline.pop(event_id, None)
        if done == len(ids):
            self._fired -= ids
            self._finished -= ids
        # Else some row was not ours any more (its lease ran out while completion failed): it
        # may come back to this instance (another released it), so it stays known as delivered.
        self.stats.completed += done

    async def _idle(self, seconds: float) -> bool:
        """Wait ``seconds`` unless stopping; True if the scheduler is still running."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _complete_loop(self) -> None:
        """Complete delivered events in batches; asleep while nothing is delivered."""
        while True:
            await self._completions.wait()
            running = await self._idle(COMPLETE_INTERVAL_S)  # gather a batch
            self._completions.clear()
            await self._complete()
            if not running:
                return

    # --- the store's clock --------------------------------------------------------------------

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def _measure_clock(self) -> None:
        """Read the store's clock and keep the offset to this process's clock.

        The reading was taken between ``before`` and ``after``; if it lies within,
        the clocks agree (offset zero), else the offset is taken at its smallest
        possible value, so the scheduler's notion of the store's time is never
        ahead of it: an event may fire a round trip late, never early.
        """
        before = self._process_clock()
        try:
            store_now = to_utc(await asyncio.to_thread(self.store.now))
        except _STORE_FAULTS as exc:
            self._faults.report("clock", "the store's clock not read: %s", exc)
            return
        after = self._process_clock()
        offset = timedelta(0) if before <= store_now <= after else store_now - after
        if abs(offset - self._offset) > SKEW_WARNING:
            logger.warning(
                "this process's clock differs from the store's by %.3f s; "
                "scheduling on the store's clock",
                -offset.total_seconds(),
            )
        if offset != self._offset:
            self._offset = offset
            self._timers.rearm()

    # --- claiming and renewing ----------------------------------------------------------------

    async def _claim(self) -> None:
        async with self._lease_lock:
            started = self._loop_time()
            try:
                events = await asyncio.to_thread(
                    self.store.claim,
                    self.owner,
                    due_before=self.now() + self.settings.horizon,
                    lease=self.settings.lease,
                    limit=CLAIM_BATCH,
                )
            except _STORE_FAULTS as exc:
                self._faults.report("claim", "scheduled events not claimed: %s", exc)
                self._claim_unsure = True  # it may have committed: reconcile at the next renewal
                self._renew_now.set()
                return
            self._faults.reset("claim")
            deadline = started + self._lease_s * (1 - LEASE_MARGIN)
            for event in events:
                if self._stopping.is_set():  # claimed as the bus stopped: `stop` releases it
                    break
                self._held(event, deadline)
        if len(events) == CLAIM_BATCH:
            self._wake.set()

    def _held(self, event: ScheduledEvent, deadline: float) -> None:
        """A claim returned ``event``: hold it until ``deadline`` and fire it when due."""
        event_id = event.event_id
        self.stats.claimed += 1
        self._claimed.add(event_id)
        self._deadline[event_id] = deadline
        self._unsaved.discard(event_id)
        self._unconfirmed.pop(event_id, None)  # this claim confirms the lease: fire as usual
        if event_id not in self._fired:
            self._wait_for(event)
        elif event_id in self._finished:  # delivered here already: complete, never re-deliver
            self._to_complete.add(event_id)
            self._completions.set()

    @property
    def _lease_s(self) -> float:
        return self.settings.lease.total_seconds()

    async def _claim_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            await self._claim()

    async def _renew_loop(self) -> None:
        interval = self._lease_s / 3
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), interval)
            self._renew_now.clear()
            if self._stopping.is_set():
                return
            await self._measure_clock()
            if self._claimed or self._claim_unsure:
                await self._renew()
            if self._unconfirmed and not self._renew_now.is_set():
                asyncio.get_running_loop().call_later(RETRY_S, self._renew_now.set)

    async def _renew(self) -> None:
        async with self._lease_lock:
            known = set(self._claimed)
            started = self._loop_time()
            try:
                held = await asyncio.to_thread(
                    self.store.renew, self.owner, lease=self.settings.lease
                )
            except _STORE_FAULTS as exc:
                self._faults.report("renew", "leases not renewed: %s", exc)
                return
            self._faults.reset("renew")
            self._claim_unsure = False
            unknown = held - known
            if unknown:
                await self._release_unknown(unknown)
        deadline = started + self._lease_s * (1 - LEASE_MARGIN)
        for event_id in known & held & self._claimed:
            self._deadline[event_id] = deadline
        lost = [event_id for event_id in (known - held) & self._claimed if self._lost(event_id)]
        if lost:
            logger.warning(
                "leases on %d scheduled events lost (taken over elsewhere); not delivering "
                "them here: %s",
                len(lost),
                ", ".join(sorted(lost)[:10]) + (", ..." if len(lost) > 10 else ""),
            )
        now = self._loop_time()
        for event_id, event in list(self._unconfirmed.items()):
            if self._deadline.get(event_id, 0.0) > now:
                del self._unconfirmed[event_id]
                self._deliver(event)

    async def _release_unknown(self, unknown: set[str]) -> None:
        """Rows this instance holds that memory does not know: a claim committed but its
        answer was lost. Release them, so a claim (here or elsewhere) delivers them."""
        try:
            released = await asyncio.to_thread(self.store.release, self.owner, unknown)
        except _STORE_FAULTS as exc:
            self._faults.report("release", "unknown held rows not released: %s", exc)
            self._claim_unsure = True
            return
        self.stats.released_unknown += released
        self._wake.set()
        logger.warning("released %d scheduled events held without this bus knowing", released)

    def _lost(self, event_id: str) -> bool:
        """The database no longer says ``event_id`` is held here: never deliver it here.
        True if it was still to be delivered."""
        self._claimed.discard(event_id)
        self._deadline.pop(event_id, None)
        event = self._waiting.pop(event_id, None) or self._unconfirmed.pop(event_id, None)
        if event is None:
            return False
        self.stats.lost_leases += 1
        return True
