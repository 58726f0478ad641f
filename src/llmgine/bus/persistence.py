"""How the bus reaches storage: the environment-driven seed functions, or a store it is given.

Every method is best-effort: database faults are logged by the layer below
and never raised here. The blocking ones (`save`, `restore`, `flush`) are
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

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for queued writes (blocking)."""
        ...


class EnvironmentPersistence:
    """The seed's behaviour: the module functions of `llmgine.database`, set by the environment."""

    def save(self, events: Sequence[ScheduledEvent]) -> None:
        api.save_unfinished_events(events)

    def restore(self) -> list[ScheduledEvent]:
        return api.get_and_delete_unfinished_events()

    def log(self, event: Event) -> None:
        api.persist_event(event)

    def flush(self, timeout: float) -> None:
        with contextlib.suppress(LlmginePersistenceError, OSError):  # reported where it failed
            DatabaseEngine.get_writer().flush(timeout)


class StorePersistence:
    """A store given explicitly, with an optional event log written in the background."""

    def __init__(self, store: ScheduledEventStore, event_log: EventLog | None = None) -> None:
        self._store = store
        self._writer = Writer(log=event_log, scheduled=store, name="llmgine-bus-writer")
        self._logging = event_log is not None
        self._faults = FaultLog(logger)

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
        if self._logging:
            self._writer.submit_log(event)

    def flush(self, timeout: float) -> None:
        self._writer.flush(timeout)
