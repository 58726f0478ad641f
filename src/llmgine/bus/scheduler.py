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
- **On time.** Claimed events wait in a `TimerHeap` and fire at their due
  instant; once the bus has run their handlers they are completed (deleted),
  in batches. Delivery is at-least-once: an instance that dies after a
  delivery but before its completion commits leaves the event to be
  delivered again, with the same ``event_id``, after its lease expires.
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
        self._clock = clock
        self._timers = TimerHeap(self._fire, clock=clock)
        self._writer = Writer(scheduled=store, name="llmgine-scheduler-writer")
        self._faults = FaultLog(logger)
        self._waiting: dict[str, ScheduledEvent] = {}
        """Events in the timer heap, by id."""
        self._claimed: set[str] = set()
        """Ids this instance holds a lease on (waiting or being delivered)."""
        self._unsaved: set[str] = set()
        """Ids published here whose row is not committed yet (fire from memory)."""
        self._delivered_unsaved: set[str] = set()
        """Ids delivered from memory whose row may still appear: complete it when claimed."""
        self._to_complete: set[str] = set()
        self._in_flight: deque[tuple[float, asyncio.Future[bool], ScheduledEvent]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._completions = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._waiting)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim what is due within the horizon, then keep claiming, renewing, completing."""
        loop = asyncio.get_running_loop()
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
        self._claimed.clear()

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
            if due <= self._clock() + self.settings.horizon:
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
        if self._waiting.pop(event.event_id, None) is None:
            return  # its lease was lost meanwhile
        late = self._clock() - to_utc(event.scheduled_time)
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
        """The bus ran ``event``'s handlers: complete it (or remember it, if not yet saved)."""
        if event.event_id in self._claimed:
            self._to_complete.add(event.event_id)
            self._completions.set()
        elif event.event_id in self._unsaved:
            self._delivered_unsaved.add(event.event_id)

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
        self._claimed -= ids
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

    # --- claiming and renewing ----------------------------------------------------------------

    async def _claim(self) -> None:
        due_before = self._clock() + self.settings.horizon
        try:
            events = await asyncio.to_thread(
                self.store.claim,
                self.owner,
                due_before=due_before,
                lease=self.settings.lease,
                limit=CLAIM_BATCH,
            )
        except _STORE_FAULTS as exc:
            self._faults.report("claim", "scheduled events not claimed: %s", exc)
            return
        self._faults.reset("claim")
        for event in events:
            if self._stopping.is_set():  # claimed as the bus stopped: `stop` releases it
                break
            self.stats.claimed += 1
            self._claimed.add(event.event_id)
            self._unsaved.discard(event.event_id)
            if event.event_id in self._delivered_unsaved:
                self._delivered_unsaved.discard(event.event_id)
                self._to_complete.add(event.event_id)
                self._completions.set()
            else:
                self._wait_for(event)
        if len(events) == CLAIM_BATCH:
            self._wake.set()

    async def _claim_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            await self._claim()

    async def _renew_loop(self) -> None:
        interval = self.settings.lease.total_seconds() / 3
        while await self._idle(interval):
            if not self._claimed:
                continue
            try:
                held = await asyncio.to_thread(
                    self.store.renew, self.owner, lease=self.settings.lease
                )
            except _STORE_FAULTS as exc:
                self._faults.report("renew", "leases not renewed: %s", exc)
                continue
            lost = self._claimed - held - self._to_complete
            for event_id in lost:
                self._claimed.discard(event_id)
                if self._waiting.pop(event_id, None) is not None:
                    self.stats.lost_leases += 1
                    logger.warning("lease on scheduled event %s lost; not delivering it", event_id)
