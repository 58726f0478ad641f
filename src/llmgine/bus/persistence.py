"""How the bus reaches storage: the environment-driven seed functions, or a store it is given.

Every method is best-effort: database faults are logged by the layer below
and never raised here. The blocking ones (`save`, `restore`, `close`) are
called by the bus from a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from llmgine.database import api
from llmgine.database._faultlog import FaultLog
from llmgine.database.engine import DatabaseEngine
from llmgine.database.store import EventLog, ScheduledEventStore
from llmgine.database.writer import Writer
from llmgine.errors import LlmginePersistenceError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)


class BusPersistence(Protocol):
    """What the bus needs from storage."""

    def save(self, events: Sequence[ScheduledEvent]) -> None:
        """Store pending scheduled events (blocking, best-effort)."""
        ...

    def restore(self) -> list[ScheduledEvent]:
        """Take every stored scheduled event (blocking, best-effort)."""
        ...

    def log(self, event: Event) -> None:
        """Queue ``event`` for the event log if it is on (never blocks)."""
        ...

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued writes, then release what the bus
        holds until its next start (blocking)."""
        ...


class EnvironmentPersistence:
    """The seed's behaviour: the module functions of `llmgine.database`, set by the environment."""

    def save(self, events: Sequence[ScheduledEvent]) -> None:
        api.save_unfinished_events(events)

    def restore(self) -> list[ScheduledEvent]:
        return api.get_and_delete_unfinished_events()

    def log(self, event: Event) -> None:
        api.persist_event(event)

    def close(self, timeout: float) -> None:
        """Flush the shared writer; `DatabaseEngine` owns it and ends it."""
        with contextlib.suppress(LlmginePersistenceError, OSError):  # reported where it failed
            DatabaseEngine.get_writer().flush(timeout)


class StorePersistence:
    """A store given explicitly, with an optional event log written in the background."""

    def __init__(self, store: ScheduledEventStore, event_log: EventLog | None = None) -> None:
        self._store = store
        self._event_log = event_log
        self._writer = self._new_writer()
        self._faults = FaultLog(logger)

    def _new_writer(self) -> Writer:
        """A writer whose thread starts on its first write."""
        return Writer(log=self._event_log, scheduled=self._store, name="llmgine-bus-writer")

    def save(self, events: Sequence[ScheduledEvent]) -> None:
        if not events:
            return
        try:
            self._writer.submit_scheduled(list(events)).result(timeout=api.SAVE_TIMEOUT_S)
        except Exception as exc:
            self._faults.report("save", "scheduled events not saved: %s", exc, level=logging.ERROR)

    def restore(self) -> list[ScheduledEvent]:
        try:
            return self._store.take_all()
        except (LlmginePersistenceError, OSError) as exc:
            self._faults.report("restore", "scheduled events not restored: %s", exc)
            return []

    def log(self, event: Event) -> None:
        if self._event_log is not None:
            self._writer.submit_log(event)

    def close(self, timeout: float) -> None:
        """Flush, then end the writer's thread; one still retrying a failing database is
        kept, and keeps retrying, for the next start."""
        if self._writer.flush(timeout):
            self._writer.stop(timeout=0)
            self._writer = self._new_writer()
