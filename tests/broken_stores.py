"""Deliberately broken stores, each with one flaw the conformance suite must catch.

Each factory is usable as ``--llmgine-store broken_stores:<factory>`` (with
``tests/`` importable) and declares what a correct store of its kind declares,
so the suite's tests run on it. `test_suite_is_not_vacuous` runs the suite
on each one and expects the capability the flaw breaks to fail, while the
correct twins at the end of this module pass the very same run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from llmgine.database import codec
from llmgine.database.instants import to_utc, utc_now
from llmgine.database.memory import MemoryStore
from llmgine.database.memory import _Row as Row
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance.backends import (
    Backend,
    Clock,
    MemoryBackend,
    SqlBackend,
    faulty,
    sqlite_backend,
)

logger = logging.getLogger(__name__)


class _MemoryBackendOf(MemoryBackend):
    """`MemoryBackend` (RESTART, CLOCK, RAW_ROWS, EVENT_LOG) opening ``store_class`` stores."""

    def __init__(self, store_class: type[MemoryStore]) -> None:
        super().__init__()
        self.store_class = store_class
        self.name = store_class.__name__

    def open(self, *, clock: Clock | None = None) -> MemoryStore:
        return self.store_class(self.database, clock=clock or utc_now)


# --- (a) deletes the rows it cannot decode ----------------------------------------------------


class DeletesPoisonRows(MemoryStore):
    """Drops an undecodable row from the database instead of quarantining it."""

    def _decoded(self, rows: list[Row]) -> list[tuple[Row, ScheduledEvent]]:
        decoded = []
        for row in sorted(rows, key=lambda r: (r.due, r.id)):
            try:
                event = codec.decode_event(row.event_class_name, codec.loads(row.event_data))
            except Exception as exc:
                logger.warning("deleting undecodable scheduled event %s: %s", row.event_id, exc)
                del self.database.scheduled[row.event_id]  # BROKEN: gone for good
            else:
                decoded.append((row, event))
        return decoded


def deletes_poison_rows(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(DeletesPoisonRows)


# --- (b) loses the UTC offset -------------------------------------------------------------------


class LosesUtcOffset(MemoryStore):
    """Keeps due times as naive wall clocks, as a ``timestamp without time zone`` column would:
    the offset (and the zone) is dropped, so the instant compared is the wrong one."""

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        super().add([_wall_clock(event) for event in events])


def _wall_clock(event: ScheduledEvent) -> ScheduledEvent:
    due = event.scheduled_time
    if not isinstance(due, datetime) or due.tzinfo is None:
        return event
    return dataclasses.replace(event, scheduled_time=due.replace(tzinfo=None))  # BROKEN


def loses_utc_offset(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(LosesUtcOffset)


# --- (c) hands one event to two concurrent callers -------------------------------------------


class HandsOutTwice(MemoryStore):
    """Reads the claimable rows, lets a moment pass, then takes them: not atomic, so two
    concurrent callers can both read (and both return) the same event."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now, due_limit = self._clock(), to_utc(due_before)
        with self.database.lock:
            rows = [
                r
                for r in self.database.scheduled.values()
                if self._claimable(r, now) and r.due <= due_limit
            ]
            chosen = self._decoded(sorted(rows, key=lambda r: (r.due, r.id))[: max(limit, 0)])
        time.sleep(0.001)  # BROKEN: another caller reads the same rows meanwhile
        with self.database.lock:
            for row, _ in chosen:
                row.owner, row.lease_until = owner, now + lease
        return [event for _, event in chosen]

    def take_all(self) -> list[ScheduledEvent]:
        now = self._clock()
        with self.database.lock:
            rows = [r for r in self.database.scheduled.values() if self._claimable(r, now)]
            taken = self._decoded(rows)
        time.sleep(0.001)  # BROKEN: another caller reads the same rows meanwhile
        with self.database.lock:
            for row, _ in taken:
                self.database.scheduled.pop(row.event_id, None)
        return [event for _, event in taken]


def hands_out_twice(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(HandsOutTwice)


# --- (d) lets the driver's error escape ---------------------------------------------------------


class RaisesRawErrors(SQLAlchemyStore):
    """Translates no database error: a fault escapes as the raw SQLAlchemy exception
    instead of `StoreUnavailableError`."""

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        yield  # BROKEN: no translation


class _RawErrorsBackend(SqlBackend):
    """A `SqlBackend` whose stores are `RaisesRawErrors` on the backend's own engines."""

    def open(self, *, clock: Clock | None = None) -> SQLAlchemyStore:
        store = super().open(clock=clock)  # the engine, with the FaultInjector attached
        return RaisesRawErrors(store.engine, naming=store.naming, clock=clock)


def raises_raw_errors(tmp_path: Path) -> Backend:
    return faulty(_RawErrorsBackend("sqlite", f"sqlite:///{tmp_path / 'raw.db'}", "message_bus"))


# --- the correct twins ----------------------------------------------------------------------


def memory_store(tmp_path: Path) -> Backend:
    """llmgine's `MemoryStore`, the correct twin of (a), (b) and (c)."""
    return _MemoryBackendOf(MemoryStore)


def faulty_sqlite_store(tmp_path: Path) -> Backend:
    """llmgine's `SQLAlchemyStore` on the fault-injecting SQLite engine, the twin of (d)."""
    return faulty(sqlite_backend(tmp_path))
