"""Where the bus keeps things: the store for scheduled events, and the event-log sink.

With no store given, both follow the environment (the seed's behaviour): the
store is `DatabaseEngine`'s for the configuration at `start`, and each
published event goes to `persist_event`, which reads ``LLMGINE_PERSIST_EVENTS``
on every call. A configuration that cannot work leaves the bus scheduling in
memory only, after one error in the log. Nothing here raises a database fault.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

from llmgine.database import api
from llmgine.database.engine import DatabaseEngine
from llmgine.database.memory import MemoryStore
from llmgine.database.retention import Retention
from llmgine.database.store import EventLog, ScheduledEventStore
from llmgine.database.writer import Writer, WriterStats
from llmgine.errors import ConfigurationError
from llmgine.messages.events import Event

logger = logging.getLogger(__name__)


def environment_store() -> ScheduledEventStore:
    """The environment's store; a memory store (not durable) if the configuration is invalid."""
    try:
        return DatabaseEngine.get_store()
    except ConfigurationError:  # already logged, once, by DatabaseEngine
        logger.error("scheduled events are kept in memory only: they will not survive a restart")
        return MemoryStore()


class EventLogSink(Protocol):
    """Where the bus sends every published event."""

    def log(self, event: Event) -> None:
        """Queue ``event`` (never blocks, never raises)."""
        ...

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued entries; the sink stays usable (blocking)."""
        ...

    def stats(self) -> WriterStats | None:
        """The writer's counters (written, dropped, retried, queue depth, last error)."""
        ...


class EnvironmentEventLog:
    """`persist_event`: on when ``LLMGINE_PERSIST_EVENTS`` says so, at each call."""

    def log(self, event: Event) -> None:
        api.persist_event(event)

    def close(self, timeout: float) -> None:
        DatabaseEngine.flush(timeout)

    def stats(self) -> WriterStats | None:
        """The environment's writer's counters; None if the configuration is invalid."""
        try:
            return DatabaseEngine.get_writer().stats()
        except ConfigurationError:
            return None


class StoreEventLog:
    """An event log given explicitly, written by a writer thread of its own."""

    def __init__(self, event_log: EventLog, retention: Retention | None = None) -> None:
        self._event_log = event_log
        self._retention = retention
        self._earlier: WriterStats | None = None
        """What the writers of earlier runs counted (`close` starts a new writer)."""
        self._writer = self._new_writer()

    def _new_writer(self) -> Writer:
        return Writer(log=self._event_log, retention=self._retention, name="llmgine-bus-log-writer")

    def log(self, event: Event) -> None:
        self._writer.submit_log(event)

    def close(self, timeout: float) -> None:
        """Flush, then end the writer's thread; one still retrying a failing database is
        kept, and keeps retrying, for the next start."""
        if self._writer.flush(timeout):
            self._writer.stop(timeout=0)
            self._earlier = _sum(self._earlier, self._writer.stats())
            self._writer = self._new_writer()

    def stats(self) -> WriterStats:
        """Counters since this sink was made (across bus restarts)."""
        return _sum(self._earlier, self._writer.stats())


class NoEventLog:
    """No event log."""

    def log(self, event: Event) -> None:
        """Nothing to do."""

    def close(self, timeout: float) -> None:
        """Nothing to do."""

    def stats(self) -> None:
        """No writer."""


def _sum(earlier: WriterStats | None, current: WriterStats) -> WriterStats:
    """``current`` with the counts of ``earlier`` added (depth and last error are current)."""
    if earlier is None:
        return current
    return replace(
        current,
        written=earlier.written + current.written,
        scheduled_written=earlier.scheduled_written + current.scheduled_written,
        dropped=earlier.dropped + current.dropped,
        retried=earlier.retried + current.retried,
        last_error=current.last_error or earlier.last_error,
    )
