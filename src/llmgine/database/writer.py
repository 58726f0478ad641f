"""The background writer: one thread that batches every write into few transactions.

Event-log entries go into a bounded queue and are written in batches, one
transaction per batch; when the queue is full, new entries are dropped and
counted. Scheduled events are never dropped: each submission returns a future
that resolves when its rows are committed, and all submissions waiting at one
moment share one transaction (group commit).

On `StoreUnavailableError` a batch is retried with exponential backoff until
it succeeds or the writer stops. A batch the database refuses for its data
(`RejectedDataError`, `UnstorableEventError`, or a ``ValueError``, ``TypeError``,
``OverflowError`` or ``RecursionError`` raised converting a value: see
`llmgine.errors.refusal`) is split in halves until the
offending entry is alone; that entry is logged and dropped (a scheduled one
fails its future) and the rest are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

from llmgine import errors
from llmgine.database._faultlog import FaultLog
from llmgine.database.retention import Retention
from llmgine.database.store import EventLog, ScheduledEventStore
from llmgine.errors import StoreUnavailableError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOG_LINGER_S = 0.01
"""How long the writer waits for more event-log entries before writing a partial batch."""

GROUP_COMMIT_WAIT_S = 0.001
"""How long the writer may wait for more scheduled submissions before a commit, and only
when the previous commit carried several (PostgreSQL's commit_delay, in spirit): a lone
publisher never waits, a crowd shares commits."""


class LoopCallback:
    """Call ``callback(error)`` on ``loop`` when a submission is settled (None: committed)."""

    __slots__ = ("callback", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[BaseException | None], None]
    ) -> None:
        self.loop = loop
        self.callback = callback


Waiter = Future[None] | LoopCallback
"""Who waits for a scheduled submission: another thread, or a coroutine's event loop."""


def _settle(outcomes: list[tuple[Waiter, BaseException | None]]) -> None:
    """Settle waiters; those of an event loop with one thread-safe call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[LoopCallback, BaseException | None]]]
    by_loop = {}
    for waiter, error in outcomes:
        if isinstance(waiter, LoopCallback):
            by_loop.setdefault(waiter.loop, []).append((waiter, error))
        elif error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
    for loop, callbacks in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_run_callbacks, callbacks)


def _run_callbacks(callbacks: list[tuple[LoopCallback, BaseException | None]]) -> None:
    for waiter, error in callbacks:
        try:
            waiter.callback(error)
        except Exception:
            logger.exception("llmgine writer: a completion callback failed")


@dataclass(frozen=True)
class WriterStats:
    """Counters since the writer was created."""

    written: int
    """Event-log entries committed."""
    scheduled_written: int
    """Scheduled events committed."""
    dropped: int
    """Event-log entries dropped: queue full, refused by the database, or abandoned at stop."""
    retried: int
    """Batches retried after a transient fault."""
    queue_depth: int
    """Entries waiting now (log and scheduled)."""
    last_error: str | None


class Writer:
    """Writes event-log entries and scheduled events on a background thread.

    The thread starts on the first submission. ``log`` and ``scheduled`` may
    be the same object (the SQL store is both).
    """

    def __init__(
        self,
        *,
        log: EventLog | None = None,
        scheduled: ScheduledEventStore | None = None,
        max_queue: int = 100_000,
        max_batch: int = 5_000,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        retention: Retention | None = None,
        name: str = "llmgine-writer",
    ) -> None:
        self._log = log
        self._scheduled = scheduled
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retention = retention if log is not None else None
        self._next_retention = time.monotonic() + (retention.every if retention else 0.0)
        self._name = name
        self._cond = threading.Condition()
        self._log_queue: deque[Event] = deque()
        self._sched_queue: deque[tuple[list[ScheduledEvent], Waiter]] = deque()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._idle = False
        self._stopping = False
        self._faults = FaultLog(logger)
        self._written = self._scheduled_written = self._dropped = self._retried = 0
        self._last_error: str | None = None

    # --- submitting ---------------------------------------------------------------------

    def submit_log(self, event: Event) -> bool:
        """Queue ``event`` for the event log; False if it was dropped (queue full or stopped).

        The common case takes no lock: a deque append is atomic, and the
        writer marks itself idle before it looks at the queue for the last
        time, so an append it could miss is always followed by a notify.
        """
        queue = self._log_queue
        if (
            self._thread is not None
            and not self._stopping
            and self._log is not None
            and len(queue) < self._max_queue
        ):
            queue.append(event)
            if self._idle or self._stopping:
                self._wake_or_drop()
            return True
        with self._cond:
            if self._stopping or self._log is None or len(queue) >= self._max_queue:
                self._dropped += 1
                full = not self._stopping and self._log is not None
            else:
                queue.append(event)
                self._start_locked()
                self._cond.notify()
                return True
        if full:
            self._faults.report(
                "full", "event log queue full (%d); dropping new entries", self._max_queue
            )
        return False

    def _wake_or_drop(self) -> None:
        """After a lock-free append: wake an idle writer, or, if `stop` raced the append,
        count what it left in the queue as dropped."""
        with self._cond:
            if self._stopping:
                self._dropped += len(self._log_queue)
                self._log_queue.clear()
            else:
                self._cond.notify()

    def submit_scheduled(self, events: Sequence[ScheduledEvent]) -> Future[None]:
        """Queue ``events`` for the scheduled store; the future resolves once they are committed.

        If the store refuses some of them (`UnstorableEventError`,
        `RejectedDataError`), the others are still written and the future then
        fails with the first refusal. It fails with `StoreUnavailableError` if
        the writer stops before the database came back.
        """
        future: Future[None] = Future()
        self._enqueue_scheduled(events, future)
        return future

    def submit_scheduled_soon(
        self, events: Sequence[ScheduledEvent], callback: Callable[[BaseException | None], None]
    ) -> None:
        """As `submit_scheduled`, for the running event loop: ``callback(error)`` runs on it.

        The callbacks of every submission one commit settles run in a single
        call into the loop, not one call each.
        """
        self._enqueue_scheduled(events, LoopCallback(asyncio.get_running_loop(), callback))

    def _enqueue_scheduled(self, events: Sequence[ScheduledEvent], waiter: Waiter) -> None:
        with self._cond:
            if self._scheduled is None:
                error = StoreUnavailableError("this writer has no scheduled store")
            elif self._stopping:
                error = StoreUnavailableError("the writer is stopped")
            else:
                self._sched_queue.append((list(events), waiter))
                self._start_locked()
                self._cond.notify()
                return
        _settle([(waiter, error)])

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    # --- waiting ---------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written or dropped; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._log_queue or self._sched_queue or self._busy:
                if self._thread is None:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop the thread; False if anything was left.

        Log entries left behind are counted as dropped; scheduled submissions
        left behind fail with `StoreUnavailableError`.
        """
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            abandoned_log = len(self._log_queue)
            self._dropped += abandoned_log
            self._log_queue.clear()
            abandoned = list(self._sched_queue)
            self._sched_queue.clear()
            self._cond.notify_all()
            thread = self._thread
        stopped = StoreUnavailableError("the writer stopped before the database recovered")
        _settle([(waiter, stopped) for _, waiter in abandoned])
        if abandoned_log or abandoned:
            logger.error(
                "writer stopped with %d event-log entries and %d scheduled submissions unwritten",
                abandoned_log,
                len(abandoned),
            )
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(timeout or 0.0, 0.1))
        with self._cond:  # entries that raced past the lock-free check in submit_log
            late = len(self._log_queue)
            self._dropped += late
            self._log_queue.clear()
        return flushed and not (abandoned_log or abandoned or late)

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                written=self._written,
                scheduled_written=self._scheduled_written,
                dropped=self._dropped,
                retried=self._retried,
                queue_depth=len(self._log_queue) + sum(len(e) for e, _ in self._sched_queue),
                last_error=self._last_error,
            )

    # --- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        last_group = 0
        while True:
            with self._cond:
                self._idle = True
                while not (self._log_queue or self._sched_queue or self._stopping):
                    if self._retention_due():
                        break
                    self._cond.wait(self._until_retention())
                self._idle = False
                if not (self._log_queue or self._sched_queue or self._stopping):
                    self._apply_retention_locked()
                    continue
                if self._stopping and not (self._log_queue or self._sched_queue):
                    return
                if not (self._sched_queue or self._stopping) and (
                    len(self._log_queue) < self._max_batch
                ):
                    # Log entries only: linger so they share a transaction (the log is
                    # fire-and-forget). A scheduled submission ends the wait at once.
                    self._cond.wait(LOG_LINGER_S)
                if 0 < len(self._sched_queue) < last_group and not self._stopping:
                    # Several submitters were waiting last time: give the rest of them a
                    # moment to arrive, so they share this commit instead of the next one.
                    self._cond.wait(GROUP_COMMIT_WAIT_S)
                jobs = list(self._sched_queue)
                last_group = len(jobs)
                self._sched_queue.clear()
                count = min(len(self._log_queue), self._max_batch)
                batch = [self._log_queue.popleft() for _ in range(count)]
                self._busy = len(jobs) + len(batch)
            try:
                if jobs:
                    self._write_scheduled(jobs)
                if batch:
                    self._write_log(batch)
            except Exception:  # never let the thread die; nothing here should raise
                logger.exception("llmgine writer: unexpected error")
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()
                    if self._retention_due():  # under steady load the writer is never idle
                        self._apply_retention_locked()

    def _retention_due(self) -> bool:
        return self._retention is not None and time.monotonic() >= self._next_retention

    def _until_retention(self) -> float | None:
        if self._retention is None:
            return None
        return max(self._next_retention - time.monotonic(), 0.0)

    def _apply_retention_locked(self) -> None:
        """Apply retention, releasing the lock while the database works."""
        retention, log = self._retention, self._log
        assert retention is not None
        assert log is not None
        self._next_retention = time.monotonic() + retention.every
        self._cond.release()
        try:
            removed = retention.apply(log)
            if removed:
                logger.debug("event log retention removed %d entries", removed)
        except Exception as exc:  # a fault: try again at the next period
            self._faults.report("retention", "event log retention not applied: %s", exc)
        finally:
            self._cond.acquire()

    def _write_scheduled(self, jobs: list[tuple[list[ScheduledEvent], Waiter]]) -> None:
        store = self._scheduled
        assert store is not None

        items = [(event, index) for index, (events, _) in enumerate(jobs) for event in events]
        errors: dict[int, Exception] = {}

        def write(part: list[tuple[ScheduledEvent, int]]) -> None:
            store.add([event for event, _ in part])

        def refused(item: tuple[ScheduledEvent, int], error: Exception) -> None:
            logger.error("scheduled event %s not written: %s", item[0].event_id, error)
            errors.setdefault(item[1], error)

        written = self._write_with_retry(items, write, refused)
        with self._cond:
            self._scheduled_written += len(written)
        _settle([(waiter, errors.get(index)) for index, (_, waiter) in enumerate(jobs)])

    def _write_log(self, batch: list[Event]) -> None:
        log = self._log
        assert log is not None

        def refused(event: Event, error: Exception) -> None:
            with self._cond:
                self._dropped += 1
            self._faults.report(
                "refused",
                "event-log entry %s (%s) dropped: %s",
                event.event_id,
                type(event).__name__,
                error,
            )

        written = self._write_with_retry(batch, log.append, refused)
        with self._cond:
            self._written += len(written)

    def _write_with_retry(
        self,
        items: list[T],
        write: Callable[[list[T]], None],
        refused: Callable[[T, Exception], None],
    ) -> list[T]:
        """Write ``items``, retrying faults and isolating refused items; return those written.

        `llmgine.errors.refusal` tells a refusal (an error raised for the data:
        `RejectedDataError`, `UnstorableEventError`, or a ``ValueError``-like error
        from an encoder or driver) from a fault. A refusal is isolated by halving
        and only the refused item is dropped; anything else counts as a fault and
        is retried, even from a store that breaks the contract by raising raw
        driver errors: the writer never drops what it was given because of one.
        """
        delay = self._retry_initial
        while True:
            try:
                write(items)
            except Exception as exc:
                refusal = errors.refusal(exc)
                if refusal is not None:
                    with self._cond:
                        self._last_error = str(refusal)
                    if len(items) == 1:
                        refused(items[0], refusal)
                        return []
                    middle = len(items) // 2
                    first = self._write_with_retry(items[:middle], write, refused)
                    return first + self._write_with_retry(items[middle:], write, refused)
                fault = (
                    exc
                    if isinstance(exc, StoreUnavailableError)
                    else StoreUnavailableError(
                        f"unexpected {type(exc).__name__} from the store: {exc}"
                    )
                )
                self._faults.report("unavailable", "llmgine writer: %s; retrying", fault)
                with self._cond:
                    self._last_error = str(fault)
                    self._retried += 1
                    stopping = self._cond.wait_for(lambda: self._stopping, delay)
                if stopping:
                    _abandon(items, refused, fault)
                    return []
                delay = min(delay * 2, self._retry_max)
                continue
            self._faults.reset("unavailable")
            return items


def _abandon(items: list[T], refused: Callable[[T, Exception], None], error: Exception) -> None:
    """Hand every item of an abandoned batch to ``refused``."""
    for item in items:
        refused(item, StoreUnavailableError(f"abandoned at stop: {error}"))
