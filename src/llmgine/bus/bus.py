"""The message bus: commands to one handler, events to many, scheduled events on time.

Call its coroutines from one event loop. Database I/O never runs on that
loop: scheduled events are written and claimed from worker threads (see
`llmgine.bus.scheduler`) and the event log is written by a background writer
(see `llmgine.bus.persistence`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable
from contextvars import Context, ContextVar
from datetime import datetime, timedelta
from types import TracebackType

from llmgine.bus.persistence import (
    EnvironmentEventLog,
    EventLogSink,
    NoEventLog,
    StoreEventLog,
    environment_store,
)
from llmgine.bus.registry import (
    CommandHandler,
    EventHandler,
    HandlerPriority,
    HandlerRegistry,
    Registered,
)
from llmgine.bus.scheduler import DurableScheduler, SchedulerSettings
from llmgine.bus.session import BusSession
from llmgine.database.codec import check_attributes
from llmgine.database.instants import to_utc, utc_now
from llmgine.database.retention import Retention
from llmgine.database.store import EventLog, ScheduledEventStore
from llmgine.database.writer import WriterStats
from llmgine.errors import UnstorableEventError
from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.events import (
    CommandResultEvent,
    CommandStartedEvent,
    Event,
    EventHandlerFailedEvent,
    ScheduledEventMissed,
)
from llmgine.messages.scheduled_events import EVENT_CLASSES, ScheduledEvent
from llmgine.messages.types import BUS_SESSION, SessionID

logger = logging.getLogger(__name__)

_Errors = list[Exception] | None
"""What an event's handlers raised; None when none did."""
_Item = tuple[Event, "asyncio.Future[_Errors] | None"]
MAX_ERROR_HISTORY = 1000

_handling: ContextVar[MessageBus | None] = ContextVar("llmgine_bus_handling", default=None)
"""The bus whose event processor runs in this context: its handlers, and the tasks they
start (``asyncio.gather`` and, before Python 3.12, ``asyncio.wait_for`` start tasks)."""


class MessageBus:
    """An asyncio message bus. Several buses can live in one process, or share a database.

    With no ``store``, scheduled events and the event log follow the
    environment (``LLMGINE_DB_URL``, ``LLMGINE_DB_SCHEMA``,
    ``LLMGINE_PERSIST_EVENTS``), as the original bus did. Given a ``store``,
    the bus keeps its scheduled events there, and logs events to
    ``event_log`` if one is given.

    Scheduled events are durable once `publish` returns: they are written
    through to the store, claimed under a lease when due within ``horizon``,
    fired at their due instant and completed after their handlers ran (see
    `llmgine.bus.scheduler` for ``lease``, ``horizon``, ``poll_interval``,
    ``publish_timeout`` and ``misfire_grace``). `stop` releases what this bus
    held, so the next `start`, of any bus on the database, takes it over at
    once; after a crash, leases expire and any live bus takes over. Events
    that fell due while no bus ran fire once when one starts, unless later
    than ``misfire_grace``: those are dropped and reported as a
    `ScheduledEventMissed` event. ``clock`` is this process's wall clock
    (tests replace it); due instants are measured on the store's clock.
    """

    def __init__(
        self,
        *,
        store: ScheduledEventStore | None = None,
        event_log: EventLog | None = None,
        stop_timeout: float = 5.0,
        misfire_grace: timedelta | None = None,
        lease: timedelta = SchedulerSettings.lease,
        horizon: timedelta = SchedulerSettings.horizon,
        poll_interval: float = SchedulerSettings.poll_interval,
        publish_timeout: float = SchedulerSettings.publish_timeout,
        log_retention: Retention | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if store is None and (event_log is not None or log_retention is not None):
            raise ValueError(
                "event_log and log_retention need a store; without one the environment "
                "configures them (LLMGINE_PERSIST_EVENTS, LLMGINE_LOG_RETENTION, ...)"
            )
        self._store = store
        self._log: EventLogSink = (
            EnvironmentEventLog()
            if store is None
            else (NoEventLog() if event_log is None else StoreEventLog(event_log, log_retention))
        )
        self._settings = SchedulerSettings(
            lease=lease,
            horizon=horizon,
            poll_interval=poll_interval,
            publish_timeout=publish_timeout,
            misfire_grace=misfire_grace,
        )
        self._clock = clock
        self._scheduler: DurableScheduler | None = None
        self._stop_timeout = stop_timeout
        self._registry = HandlerRegistry()
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._prestart: list[Event] = []
        self._lifecycle = asyncio.Lock()
        self._deferred_stop: asyncio.Task[None] | None = None
        self._suppress_event_errors = True
        self.event_handler_errors: list[BaseException] = []

    @property
    def is_running(self) -> bool:
        return self._running

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the stored scheduled events that are due soon, deliver buffered events, run."""
        async with self._lifecycle:
            if self._running:
                return
            loop = asyncio.get_running_loop()
            store = (
                self._store
                if self._store is not None
                else await asyncio.to_thread(environment_store)
            )
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._process(self._queue), name="llmgine-bus")
            self._scheduler = DurableScheduler(
                store,
                fire=self._on_due,
                on_missed=self._on_missed,
                settings=self._settings,
                clock=self._clock,
            )
            await self._scheduler.start()
            self._running = True
            buffered, self._prestart = self._prestart, []
            for early in buffered:
                if self._is_later(early):
                    assert isinstance(early, ScheduledEvent)
                    self._log.log(early)
                    await self._scheduler.schedule(early)
                else:
                    self._accept(early)

    async def stop(self) -> None:
        """Finish queued events (up to ``stop_timeout``), then save scheduled ones not yet fired.

        Called from one of this bus's handlers, it returns at once and the bus
        stops when the handler has finished: a handler cannot wait for itself.
        """
        if _handling.get() is self:
            loop = asyncio.get_running_loop()
            self._deferred_stop = loop.create_task(self.stop(), context=Context())
            return
        async with self._lifecycle:
            if not self._running or self._queue is None or self._scheduler is None:
                return
            queue, scheduler = self._queue, self._scheduler
            scheduler.pause()
            try:
                await asyncio.wait_for(queue.join(), self._stop_timeout)
            except TimeoutError:
                logger.warning("bus stopped with %d events still queued", queue.qsize())
            self._running = False
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
            self._drop_leftovers(queue)
            self._queue = None
            await scheduler.stop(self._stop_timeout)
            await asyncio.to_thread(self._log.close, self._stop_timeout)

    async def reset(self) -> None:
        """Stop the bus, forget every handler and recorded error, suppress errors again."""
        await self.stop()
        self._registry = HandlerRegistry()
        self.event_handler_errors.clear()
        self._suppress_event_errors = True

    def suppress_event_errors(self) -> None:
        """Handler errors are logged and recorded, never raised to the publisher (the default)."""
        self._suppress_event_errors = True

    def unsuppress_event_errors(self) -> None:
        """``await publish(event)`` raises the last error its event's handlers raised, after
        every handler ran. (``await_processing=False`` and scheduled events never raise.)"""
        self._suppress_event_errors = False

    @staticmethod
    def _drop_leftovers(queue: asyncio.Queue[_Item]) -> None:
        """Empty the queue after the processor stopped. Scheduled events left undelivered
        are not completed, so the store delivers them again after the release."""
        left = 0
        while not queue.empty():
            _, future = queue.get_nowait()
            left += 1
            if future is not None and not future.done():
                future.set_result(None)
        if left:
            logger.warning("%d events were not handled before the bus stopped", left)

    # --- handlers --------------------------------------------------------------------

    def register_event_handler(
        self,
        event_type: type[Event],
        handler: EventHandler,
        session_id: str = BUS_SESSION,
        priority: int = HandlerPriority.NORMAL,
    ) -> None:
        """Call ``handler`` (sync or async) for each event of exactly ``event_type``.

        A handler registered in a session sees only that session's events.
        Handlers run one after another, by ``priority`` (`HandlerPriority`: lower
        values first), then in the order they were registered.
        """
        self._registry.add_event_handler(event_type, handler, session_id, priority)

    def register_command_handler(
        self, command_type: type[Command], handler: CommandHandler, session_id: str = BUS_SESSION
    ) -> None:
        """Make ``handler`` (sync or async) the one that executes ``command_type`` in the session.

        Raises `ValueError` if the session already has one.
        """
        self._registry.add_command_handler(command_type, handler, session_id)

    def unregister_session_handlers(self, session_id: SessionID | str) -> None:
        """Forget every handler registered in ``session_id``."""
        self._registry.remove_session(session_id)

    def create_session(self, session_id: str | None = None) -> BusSession:
        """A session on this bus; use it as ``async with``."""
        return BusSession(self, session_id)

    def session(self, session_id: str | None = None) -> BusSession:
        """The same session, for ``async with bus.session() as session:``."""
        return BusSession(self, session_id)

    # --- commands ------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        """Run ``command``'s handler and return its result; never raises for a failing handler."""
        handler = self._registry.command_handler(command)
        if handler is None:
            return CommandResult(
                success=False,
                command_id=command.command_id,
                error=f"No handler registered for command {type(command).__name__}",
                session_id=command.session_id,
            )
        session = command.session_id
        await self.publish(CommandStartedEvent(command=command, session_id=session), False)
        try:
            value = handler.fn(command)
            if inspect.isawaitable(value):
                value = await value
            result = (
                value
                if isinstance(value, CommandResult)
                else CommandResult(
                    success=True, command_id=command.command_id, result=value, session_id=session
                )
            )
        except Exception as exc:
            logger.exception("command handler %s failed", handler.name)
            result = CommandResult(
                success=False,
                command_id=command.command_id,
                error=f"{type(exc).__name__}: {exc}",
                session_id=session,
            )
        await self.publish(CommandResultEvent(command_result=result, session_id=session), False)
        return result

    # --- events --------------------------------------------------------------------------

    async def publish(self, event: Event, await_processing: bool = True) -> None:
        """Publish ``event``.

        With ``await_processing``, returns once its handlers ran (an event
        published from inside a handler is handled at once). A scheduled
        event due in the future returns at once and fires at its due
        instant. Before `start`, events are buffered, not dropped.

        Raises `UnstorableEventError` for a future scheduled event that could
        not be restored after a restart: an unregistered class, or a field
        the codec cannot store. Never raises for a database fault.
        """
        due = self._due_later(event)
        later = event if due is not None else None
        if later is not None:
            assert isinstance(later, ScheduledEvent)
            self._check_storable(later)
        if not self._running or self._scheduler is None:
            self._prestart.append(event)
            return
        self._log.log(event)
        if later is not None:
            await self._scheduler.schedule(later, due)
        elif not await_processing:
            self._enqueue(event, None)
        elif _handling.get() is self:
            errors = await self._dispatch(event)  # from a handler: the queue waits for it
            self._raise_unsuppressed(errors)
        else:
            done: asyncio.Future[_Errors] = asyncio.get_running_loop().create_future()
            self._enqueue(event, done)
            self._raise_unsuppressed(await done)

    def _raise_unsuppressed(self, errors: _Errors) -> None:
        if errors and not self._suppress_event_errors:
            raise errors[-1]

    def _accept(self, event: Event) -> None:
        """Log ``event`` and queue it for its handlers."""
        self._log.log(event)
        self._enqueue(event, None)

    def _enqueue(self, event: Event, done: asyncio.Future[_Errors] | None) -> None:
        assert self._queue is not None
        self._queue.put_nowait((event, done))

    def _is_later(self, event: Event) -> bool:
        """True for a scheduled event due after now."""
        return self._due_later(event) is not None

    def _now(self) -> datetime:
        """Now on the store's clock while running (the scheduler measures it), else ours."""
        return self._clock() if self._scheduler is None else self._scheduler.now()

    def _due_later(self, event: Event) -> datetime | None:
        """The due instant of a scheduled event due after now; None for any other event."""
        if not isinstance(event, ScheduledEvent):
            return None
        if not isinstance(event.scheduled_time, datetime):
            raise UnstorableEventError(
                f"{type(event).__qualname__}.scheduled_time is a "
                f"{type(event.scheduled_time).__name__}, not a datetime"
            )
        try:
            due = to_utc(event.scheduled_time)
        except UnstorableEventError as exc:
            raise UnstorableEventError(
                f"{type(event).__qualname__}.scheduled_time: {exc}"
            ) from None
        return due if due > self._now() else None

    @staticmethod
    def _check_storable(event: ScheduledEvent) -> None:
        """Refuse a class the store could not restore, or attributes it would not store.
        (Field values are checked as the event is stored: `publish` awaits that, and
        raises the same `UnstorableEventError`.)"""
        cls = type(event)
        if EVENT_CLASSES.get(cls.__name__) is not cls:
            raise UnstorableEventError(
                f"{cls.__qualname__} is not registered, so it could not be restored after a "
                "restart; decorate it with @register_scheduled_event_class"
            )
        check_attributes(event)

    async def wait_for_events(self) -> None:
        """Wait until every queued event has been handled (scheduled ones count when due)."""
        if self._queue is None or _handling.get() is self:
            return
        await self._queue.join()

    def _on_due(self, event: ScheduledEvent) -> None:
        if self._queue is not None:
            self._queue.put_nowait((event, None))

    def _on_missed(self, event: ScheduledEvent, late_by: timedelta) -> None:
        self._accept(
            ScheduledEventMissed(missed=event, late_by=late_by, session_id=event.session_id)
        )

    async def _process(self, queue: asyncio.Queue[_Item]) -> None:
        _handling.set(self)  # this task's own context, inherited by tasks its handlers start
        while True:
            event, future = await queue.get()
            errors: _Errors = None
            try:
                errors = await self._dispatch(event)
                if isinstance(event, ScheduledEvent) and self._scheduler is not None:
                    self._scheduler.delivered(event)
            finally:
                queue.task_done()
                if future is not None and not future.done():
                    future.set_result(errors)

    async def _dispatch(self, event: Event) -> _Errors:
        """Run ``event``'s handlers; return what they raised (None if nothing)."""
        errors: _Errors = None
        for handler in self._registry.event_handlers(event):
            try:
                outcome = handler.fn(event)
                if handler.is_async or inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                self._handler_failed(event, handler, exc)
                errors = [exc] if errors is None else [*errors, exc]
        return errors

    def _handler_failed(self, event: Event, handler: Registered, exc: Exception) -> None:
        logger.exception("event handler %s failed on %s", handler.name, type(event).__name__)
        self.event_handler_errors.append(exc)
        del self.event_handler_errors[:-MAX_ERROR_HISTORY]
        if isinstance(event, EventHandlerFailedEvent):
            return  # a failing failure handler must not start a loop
        failed = EventHandlerFailedEvent(
            event=event, handler=handler.name, exception=exc, session_id=event.session_id
        )
        if self._running:
            self._accept(failed)

    @property
    def scheduled_in_memory(self) -> int:
        """How many scheduled events wait in this bus's timer heap."""
        return 0 if self._scheduler is None else len(self._scheduler)

    def event_log_stats(self) -> WriterStats | None:
        """The event-log writer's counters: entries written and dropped, batches retried,
        queue depth, last error. None without an event log (or with an invalid configuration)."""
        return self._log.stats()

    @property
    def scheduler(self) -> DurableScheduler | None:
        """The durable scheduler while the bus runs (its ``owner`` id and ``stats``)."""
        return self._scheduler

    def _abandon(self) -> None:
        """Release what this bus holds without its event loop, which is gone."""
        scheduler, self._scheduler = self._scheduler, None
        self._running = False
        if scheduler is not None:
            scheduler.abandon(self._stop_timeout)
        self._log.close(self._stop_timeout)


def bus_exception_hook(bus: MessageBus) -> None:
    """Install a `sys.excepthook` that lets ``bus`` clean up after an uncaught exception.

    The exception is reported by the hook installed before (Python's prints the
    traceback); then the bus flushes its writes and releases its scheduled events
    at once, so another bus takes them over without waiting for the lease to expire.
    (Nothing acknowledged is lost without it either: the events are in the store.)
    """
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        try:
            previous(exc_type, exc, tb)
        finally:
            logger.info("uncaught exception: releasing the message bus's scheduled events")
            bus._abandon()

    sys.excepthook = excepthook
