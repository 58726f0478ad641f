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
import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from llmgine.database import codec
from llmgine.database.instants import to_utc, utc_now
from llmgine.database.memory import MemoryStore
from llmgine.database.memory import _Row as Row
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.database.store import LogEntry, QuarantinedEvent
from llmgine.messages.events import Event
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


class _SqlBackendOf(SqlBackend):
    """A `SqlBackend` whose stores are ``store_class`` on the backend's own engines."""

    def __init__(self, store_class: type[SQLAlchemyStore], name: str, url: str) -> None:
        super().__init__(name, url, "message_bus")
        self.store_class = store_class

    def open(self, *, clock: Clock = utc_now) -> SQLAlchemyStore:
        store = super().open(clock=clock)  # the engine, with the FaultInjector attached
        return self.store_class(store.engine, naming=store.naming, clock=clock)


def _faulty_sqlite_of(store_class: type[SQLAlchemyStore], tmp_path: Path) -> Backend:
    name = store_class.__name__
    return faulty(_SqlBackendOf(store_class, "sqlite", f"sqlite:///{tmp_path / name}.db"))


# --- one flaw per clause of `llmgine.database.store` --------------------------------------------
#
# Memory stores, each overriding the one method whose clause it breaks; the lines that differ
# from `MemoryStore` are marked BROKEN.


class _Due:
    """Helpers the broken claims share with `MemoryStore.claim`."""

    @staticmethod
    def rows(
        store: MemoryStore, now: datetime, due_limit: datetime, *, inclusive: bool
    ) -> list[Row]:
        return [
            r
            for r in store.database.scheduled.values()
            if store._claimable(r, now) and (r.due <= due_limit if inclusive else r.due < due_limit)
        ]

    @staticmethod
    def take(
        store: MemoryStore, rows: list[Row], owner: str, until: datetime
    ) -> list[ScheduledEvent]:
        claimed = store._decoded(rows)
        for row, _ in claimed:
            row.owner, row.lease_until = owner, until
        return [event for _, event in claimed]


class ReAddReplacesTheRow(MemoryStore):
    """add: a stored event_id is overwritten (new due time, owner and quarantine cleared)."""

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        with self.database.lock:
            for event in events:
                self.database.scheduled.pop(event.event_id, None)  # BROKEN: not left as it was
            super().add(events)


class ReAddClearsTheClaim(MemoryStore):
    """add: re-adding a stored event keeps its due time but frees it from its owner."""

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        with self.database.lock:
            for event in events:
                row = self.database.scheduled.get(event.event_id)
                if row is not None:
                    row.owner = row.lease_until = row.quarantine_reason = None  # BROKEN
            super().add(events)


class DueBeforeIsExclusive(MemoryStore):
    """claim: an event due exactly at ``due_before`` is left out."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now = self._clock()
        with self.database.lock:
            rows = _Due.rows(self, now, to_utc(due_before), inclusive=False)  # BROKEN
            rows.sort(key=lambda r: (r.due, r.id))
            return _Due.take(self, rows[: max(limit, 0)], owner, now + lease)


class LimitsBeforeOrdering(MemoryStore):
    """claim: takes the first ``limit`` due rows in insertion order, then sorts those."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now = self._clock()
        with self.database.lock:
            rows = _Due.rows(self, now, to_utc(due_before), inclusive=True)[: max(limit, 0)]
            rows.sort(key=lambda r: (r.due, r.id))  # BROKEN: sorted after the limit
            return _Due.take(self, rows, owner, now + lease)


class TiesByEventId(MemoryStore):
    """claim: equal due instants are ordered by event_id instead of insertion."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now = self._clock()
        with self.database.lock:
            rows = _Due.rows(self, now, to_utc(due_before), inclusive=True)
            rows.sort(key=lambda r: (r.due, r.event_id))  # BROKEN
            return _Due.take(self, rows[: max(limit, 0)], owner, now + lease)


class LeaseEndsInclusive(MemoryStore):
    """claim: a lease counts as expired at its last instant, one microsecond early."""

    def _claimable(self, row: Row, now: datetime) -> bool:
        return row.quarantine_reason is None and (
            row.owner is None or (row.lease_until is not None and row.lease_until <= now)  # BROKEN
        )


class ClaimsQuarantinedRows(MemoryStore):
    """claim: quarantined rows are picked again (and fail to decode again, every time)."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now, due_limit = self._clock(), to_utc(due_before)
        with self.database.lock:
            rows = [
                r
                for r in self.database.scheduled.values()
                if (r.quarantine_reason is not None or self._claimable(r, now))  # BROKEN
                and r.due <= due_limit
            ]
            rows.sort(key=lambda r: (r.due, r.id))
            return _Due.take(self, rows[: max(limit, 0)], owner, now + lease)


class RenewsFromTheOldExpiry(MemoryStore):
    """renew: adds the lease to the old expiry instead of to now."""

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        with self.database.lock:
            held = [r for r in self.database.scheduled.values() if r.owner == owner]
            for row in held:
                assert row.lease_until is not None
                row.lease_until += lease  # BROKEN
            return {row.event_id for row in held}


class RenewNeverShortens(MemoryStore):
    """renew: keeps whichever expiry is later, so a shorter lease does not shorten it."""

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        until = self._clock() + lease
        with self.database.lock:
            held = [r for r in self.database.scheduled.values() if r.owner == owner]
            for row in held:
                row.lease_until = max(until, row.lease_until or until)  # BROKEN
            return {row.event_id for row in held}


class RenewsEveryOwner(MemoryStore):
    """renew: extends every owned row's lease, returning only the caller's."""

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        until = self._clock() + lease
        with self.database.lock:
            for row in self.database.scheduled.values():
                if row.owner is not None:
                    row.lease_until = until  # BROKEN: not fenced
            return {r.event_id for r in self.database.scheduled.values() if r.owner == owner}


class RenewDropsExpiredLeases(MemoryStore):
    """renew: an owner past its lease loses events no one else took over."""

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        now = self._clock()
        with self.database.lock:
            for row in self.database.scheduled.values():
                if row.owner == owner and row.lease_until is not None and row.lease_until < now:
                    row.owner = row.lease_until = None  # BROKEN
        return super().renew(owner, lease=lease)


class ReleasesEveryOwner(MemoryStore):
    """release: frees every owned event, counting only the caller's."""

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        with self.database.lock:
            mine = sum(1 for r in self.database.scheduled.values() if r.owner == owner)
            for row in self.database.scheduled.values():
                row.owner, row.lease_until = None, None  # BROKEN: not fenced
            return mine


class ReleaseCountsEveryHeldEvent(MemoryStore):
    """release: returns how many events anyone holds, not how many it released."""

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        with self.database.lock:
            held = sum(1 for r in self.database.scheduled.values() if r.owner is not None)
            super().release(owner, event_ids)
            return held  # BROKEN


class CompletesUnfenced(MemoryStore):
    """complete: deletes the given ids whoever holds them."""

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        scheduled = self.database.scheduled
        with self.database.lock:
            done = [i for i in set(event_ids) if i in scheduled]  # BROKEN: owner not checked
            for event_id in done:
                del scheduled[event_id]
            return len(done)


class CompleteCountsTheIdsGiven(MemoryStore):
    """complete: returns how many ids it was given, not how many it deleted."""

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        super().complete(owner, event_ids)
        return len(event_ids)  # BROKEN


class TakeAllIgnoresLeases(MemoryStore):
    """take_all: also removes events other owners hold under a live lease."""

    def _claimable(self, row: Row, now: datetime) -> bool:
        return row.quarantine_reason is None  # BROKEN (claim, next_due too)


class QuarantinedNewestFirst(MemoryStore):
    """quarantined: lists the rows newest first instead of in insertion order."""

    def quarantined(self) -> list[QuarantinedEvent]:
        return super().quarantined()[::-1]  # BROKEN


class AppendDuplicates(MemoryStore):
    """append: a retried event is logged again."""

    def append(self, events: Sequence[Event]) -> None:
        with self.database.lock:
            self.database.logged_ids.difference_update(e.event_id for e in events)  # BROKEN
            super().append(events)


class UntilIsInclusive(MemoryStore):
    """read: ``until`` includes entries exactly at it."""

    def read(self, *, until: datetime | None = None, **filters: Any) -> list[LogEntry]:
        if until is not None:
            until = to_utc(until) + timedelta(microseconds=1)  # BROKEN
        return super().read(until=until, **filters)


class SinceIsExclusive(MemoryStore):
    """read: ``since`` leaves out entries exactly at it."""

    def read(self, *, since: datetime | None = None, **filters: Any) -> list[LogEntry]:
        if since is not None:
            since = to_utc(since) + timedelta(microseconds=1)  # BROKEN
        return super().read(since=since, **filters)


class LimitsBeforeFiltering(MemoryStore):
    """read: applies ``limit`` to the whole log, then the filters."""

    def read(self, *, limit: int | None = None, **filters: Any) -> list[LogEntry]:
        window = {e.id for e in super().read(limit=limit)}  # BROKEN
        return [e for e in super().read(**filters) if e.id in window]


class IgnoresTheClassFilter(MemoryStore):
    """read: ``event_class`` is ignored when a session is given."""

    def read(self, *, event_class: str | None = None, **filters: Any) -> list[LogEntry]:
        if filters.get("session_id") is not None:
            event_class = None  # BROKEN
        return super().read(event_class=event_class, **filters)


class NaiveCreatedAt(MemoryStore):
    """read: ``created_at`` comes back naive (a wall clock in UTC)."""

    def read(self, **filters: Any) -> list[LogEntry]:
        return [
            dataclasses.replace(e, created_at=e.created_at.replace(tzinfo=None))  # BROKEN
            for e in super().read(**filters)
        ]


class PurgeIncludesTheCutoff(MemoryStore):
    """purge: also deletes entries exactly at ``older_than``."""

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        cutoff = to_utc(older_than) + timedelta(microseconds=1)  # BROKEN
        return super().purge(cutoff, batch_size=batch_size)


class PurgesByPosition(MemoryStore):
    """purge: deletes the oldest entries by insertion, as many as are older than the cutoff."""

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        cutoff = to_utc(older_than)
        count = sum(1 for e in self.database.log if e.timestamp < cutoff)
        keep = len(self.database.log) - count
        return self.trim(keep, batch_size=batch_size)  # BROKEN: the wrong entries


class TrimsByTimestamp(MemoryStore):
    """trim: keeps the entries with the newest timestamps instead of the newest inserted."""

    def trim(self, keep: int, *, batch_size: int = 1000) -> int:
        db = self.database
        with db.lock:
            ranked = sorted(db.log, key=lambda e: e.timestamp)  # BROKEN
            dropped = {e.id for e in ranked[: max(len(ranked) - keep, 0)]}
            db.log[:] = [e for e in db.log if e.id not in dropped]
            return len(dropped)


class PurgesInOneTransaction(SQLAlchemyStore):
    """purge and trim: every batch inside one transaction, so a late fault undoes them all."""

    def _delete_in_batches(self, operation: str, condition: Any, batch_size: int) -> int:
        t = self._tables.log
        batch = select(t.c.id).where(condition).order_by(t.c.id).limit(batch_size)
        total = 0
        with self._begin(operation) as conn:  # BROKEN: one transaction around the loop
            while ids := list(conn.scalars(batch)):
                conn.execute(delete(t).where(t.c.id.in_(ids)))
                total += len(ids)
        return total


MEMORY_FLAWS = (
    ReAddReplacesTheRow,
    ReAddClearsTheClaim,
    DueBeforeIsExclusive,
    LimitsBeforeOrdering,
    TiesByEventId,
    LeaseEndsInclusive,
    ClaimsQuarantinedRows,
    RenewsFromTheOldExpiry,
    RenewNeverShortens,
    RenewsEveryOwner,
    RenewDropsExpiredLeases,
    ReleasesEveryOwner,
    ReleaseCountsEveryHeldEvent,
    CompletesUnfenced,
    CompleteCountsTheIdsGiven,
    TakeAllIgnoresLeases,
    QuarantinedNewestFirst,
    AppendDuplicates,
    UntilIsInclusive,
    SinceIsExclusive,
    LimitsBeforeFiltering,
    IgnoresTheClassFilter,
    NaiveCreatedAt,
    PurgeIncludesTheCutoff,
    PurgesByPosition,
    TrimsByTimestamp,
)
"""One flaw each; the factory of each is its name in snake case (`snake_case`), e.g.
``--store broken_stores:renews_every_owner``."""


def purges_in_one_transaction(tmp_path: Path) -> Backend:
    return _faulty_sqlite_of(PurgesInOneTransaction, tmp_path)


# --- the correct twins ----------------------------------------------------------------------


def memory_store(tmp_path: Path) -> Backend:
    """llmgine's `MemoryStore`, the correct twin of (a), (b) and (c)."""
    return _MemoryBackendOf(MemoryStore)


def _factory(store_class: type[MemoryStore]) -> Callable[[Path], Backend]:
    def factory(tmp_path: Path) -> Backend:
        return _MemoryBackendOf(store_class)

    return factory


def snake_case(name: str) -> str:
    """``"RenewsEveryOwner"`` -> ``"renews_every_owner"``: a flaw's factory name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


for _flaw in MEMORY_FLAWS:
    globals()[snake_case(_flaw.__name__)] = _factory(_flaw)


def faulty_sqlite_store(tmp_path: Path) -> Backend:
    """llmgine's `SQLAlchemyStore` on the fault-injecting SQLite engine, the twin of (d)."""
    return faulty(sqlite_backend(tmp_path))
