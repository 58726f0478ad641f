"""The timer heap: scheduled events fire at their due instant, with one timer armed.

No loop wakes to re-check events that are not due: the heap's earliest event
arms a single ``loop.call_later``; adding an earlier event re-arms it. A long
wait is cut into steps of at most `MAX_SLEEP_S`, so a change of the wall clock
is noticed within that time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime

from llmgine.database.instants import to_utc, utc_now
from llmgine.messages.scheduled_events import ScheduledEvent

MAX_SLEEP_S = 60.0


class TimerHeap:
    """Scheduled events by due instant; calls ``on_due`` for each when its time comes."""

    def __init__(
        self,
        on_due: Callable[[ScheduledEvent], None],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._on_due = on_due
        self._clock = clock
        self._heap: list[tuple[datetime, int, ScheduledEvent]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: datetime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin firing on ``loop``; events added before are armed now."""
        self._loop = loop
        self._arm()

    def add(self, event: ScheduledEvent, due: datetime | None = None) -> None:
        """Schedule ``event`` at ``due`` (default: its scheduled_time as an instant)."""
        due = to_utc(event.scheduled_time) if due is None else due
        heapq.heappush(self._heap, (due, next(self._order), event))
        if self._armed_for is None or due < self._armed_for:
            self._arm()

    def rearm(self) -> None:
        """Re-arm the timer: the clock was corrected."""
        self._arm()

    def drain(self) -> list[ScheduledEvent]:
        """Stop firing and return every event not yet fired, in due order."""
        self._disarm()
        self._loop = None
        pending = [event for _, _, event in sorted(self._heap)]
        self._heap.clear()
        return pending

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_for = None

    def _arm(self) -> None:
        self._disarm()
        if self._loop is None or not self._heap:
            return
        due = self._heap[0][0]
        delay = (due - self._clock()).total_seconds()
        self._armed_for = due
        self._handle = self._loop.call_later(min(max(delay, 0.0), MAX_SLEEP_S), self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = None
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, event = heapq.heappop(self._heap)
            self._on_due(event)
        self._arm()
