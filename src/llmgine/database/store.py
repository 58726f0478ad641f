"""The store contract: what any backend must do to keep llmgine's promises.

Two Protocols. `ScheduledEventStore` keeps scheduled events until they are
delivered; `EventLog` keeps a record of published events. The SQLAlchemy
store (`llmgine.database.sqlstore`) and the in-memory store
(`llmgine.database.memory`) implement both; the conformance suite
(`llmgine_conformance`) checks any implementation against this page.

Instants: every ``datetime`` a store returns in its own columns is aware UTC;
every ``datetime`` it is given may be naive (local time) or aware. Event
payloads come back exactly as they went in (see `llmgine.database.codec`).

Errors: a method that could not reach or use its database raises
`StoreUnavailableError` (retrying may succeed) or `RejectedDataError` (the
database refused this data; retrying the same data will not help). A method
that raises has changed nothing it promised to change.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent


@dataclass(frozen=True, kw_only=True)
class QuarantinedEvent:
    """A stored scheduled event that cannot be restored, kept with the reason."""

    event_id: str
    event_class_name: str
    reason: str
    event_data: str
    """The stored payload as raw text, exactly as the database holds it."""


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    """One event as the event log recorded it."""

    id: int
    """Position in the log; ids grow in insertion order."""
    event_id: str
    event_class_name: str
    data: Any
    """The event's fields as plain JSON (see `llmgine.database.log_json`): ISO
    strings for datetimes, lists for tuples, a readable repr for values JSON
    cannot hold."""
    session_id: str | None
    timestamp: datetime
    created_at: datetime


@runtime_checkable
class ScheduledEventStore(Protocol):
    """Keeps scheduled events until they are delivered, safely for many owners.

    An event is *claimable* when it is not quarantined and either has no owner
    or its owner's lease has expired. Claims are fenced: a method given an
    owner acts only on events that owner currently holds.
    """

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        """Store ``events``; durable when this returns.

        Idempotent by ``event_id``: an event whose id is already stored is left
        as it was (its due time is not moved). Raises `UnstorableEventError`
        before writing anything if an event cannot be encoded.
        """
        ...

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        """Take up to ``limit`` claimable events due at or before ``due_before``.

        Returns them ordered by due instant, then by insertion, and marks them
        owned by ``owner`` until now + ``lease``. Atomic: two concurrent claims
        never return the same event. Rows that cannot be decoded are
        quarantined instead of returned.
        """
        ...

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        """Extend ``owner``'s leases to now + ``lease``; return the ids still held.

        An event missing from the result is no longer ``owner``'s (its lease
        expired and another owner claimed it, or it was completed) and must
        not be delivered by ``owner``.
        """
        ...

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        """Give up the events ``owner`` holds, making them claimable at once.

        With ``event_ids``, only those of them ``owner`` holds; without, every
        one. Returns how many were released; a stale owner releases nothing.
        """
        ...

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        """Delete delivered events that ``owner`` holds; return how many.

        Ids not held by ``owner`` are left untouched, so a stale owner cannot
        delete an event another owner has claimed.
        """
        ...

    def take_all(self) -> list[ScheduledEvent]:
        """Remove and return every claimable event, ordered by due instant.

        Atomic: concurrent callers never both receive one event, and an event
        added concurrently is either returned or left stored, never deleted
        unseen. Rows that cannot be decoded are quarantined, never deleted.
        """
        ...

    def next_due(self) -> datetime | None:
        """The earliest due instant among claimable events, or None if none.

        Only reads: on a database without the tables it returns None and creates nothing.
        """
        ...

    def quarantined(self) -> list[QuarantinedEvent]:
        """Every quarantined row, in insertion order; only reads (no tables: [])."""
        ...

    def now(self) -> datetime:
        """The current instant on the clock leases are measured by (aware UTC).

        ``claim``, ``renew`` and ``next_due`` compare and extend leases on this
        clock: a database server's clock where the store uses it, else the
        host's. A scheduler measures its own clock against it, so a process
        whose clock is off neither fires early nor loses its leases.
        """
        ...

    def close(self) -> None:
        """Release resources this store created. Idempotent."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """An append-only record of published events."""

    def append(self, events: Sequence[Event]) -> None:
        """Record ``events`` in order; durable when this returns.

        Idempotent by ``event_id``: retrying never duplicates an entry. A value
        that cannot be encoded is recorded as its repr rather than rejected.
        """
        ...

    def read(
        self,
        *,
        session_id: str | None = None,
        event_class: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[LogEntry]:
        """Entries in insertion order, filtered.

        ``since`` is inclusive and ``until`` exclusive, both on the event's
        timestamp; ``after_id`` returns only entries after that id (paging).
        Only reads: on a database without the tables it returns [] and creates nothing.
        """
        ...

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        """Delete entries whose timestamp is before ``older_than``; return how many.

        Works in batches of ``batch_size`` rows, one transaction each, so a
        large purge never holds a long lock.
        """
        ...

    def trim(self, keep: int, *, batch_size: int = 1000) -> int:
        """Delete all but the ``keep`` newest entries (by insertion); return how many.

        In batches of ``batch_size``, one transaction each, oldest first.
        """
        ...
