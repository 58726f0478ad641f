"""The in-memory store: the smallest complete implementation of the contract.

Payloads are kept as JSON text, as a database would keep them, so the memory
store proves the codec as the SQL store does. A `MemoryDatabase` plays the
part of the database file: stores opened on one `MemoryDatabase` see the same
rows, which is how the conformance suite "restarts" a memory store. Nothing
survives the process.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from llmgine.database import codec
from llmgine.database.instants import parse_timestamp, to_utc, utc_now
from llmgine.database.log_json import log_json
from llmgine.database.store import LogEntry, QuarantinedEvent
from llmgine.errors import DecodeError, UnstorableEventError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)


@dataclass
class _Row:
    id: int
    event_id: str
    event_class_name: str
    event_data: str
    due: datetime
    owner: str | None = None
    lease_until: datetime | None = None
    quarantine_reason: str | None = None


@dataclass
class MemoryDatabase:
    """The rows behind one or more `MemoryStore` objects."""

    scheduled: dict[str, _Row] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    logged_ids: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        """Store a row as given, bypassing the codec (to test undecodable rows)."""
        with self.lock:
            self.scheduled[event_id] = _Row(
                next(self.ids), event_id, event_class_name, event_data, to_utc(due)
            )


class MemoryStore:
    """A `ScheduledEventStore` and `EventLog` held in a `MemoryDatabase`."""

    def __init__(
        self,
        database: MemoryDatabase | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self._clock = clock

    def close(self) -> None:
        """Nothing to release; the rows stay in the `MemoryDatabase`."""

    # --- ScheduledEventStore ---------------------------------------------------------

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        rows = []
        for event in events:
            if not isinstance(event.scheduled_time, datetime):
                raise UnstorableEventError(
                    f"{type(event).__qualname__}.scheduled_time is not a datetime"
                )
            payload = codec.dumps(codec.encode_event(event))
            rows.append((event, payload, to_utc(event.scheduled_time)))
        db = self.database
        with db.lock:
            for event, payload, due in rows:
                if event.event_id not in db.scheduled:
                    db.scheduled[event.event_id] = _Row(
                        next(db.ids), event.event_id, type(event).__name__, payload, due
                    )

    def _claimable(self, row: _Row, now: datetime) -> bool:
        return row.quarantine_reason is None and (
            row.owner is None or (row.lease_until is not None and row.lease_until < now)
        )

    def _decoded(self, rows: list[_Row]) -> list[tuple[_Row, ScheduledEvent]]:
        """Decode rows in due order; quarantine the ones that fail. Caller holds the lock."""
        decoded = []
        for row in sorted(rows, key=lambda r: (r.due, r.id)):
            try:
                payload = codec.loads(row.event_data)
                event = codec.decode_event(row.event_class_name, payload, row.event_id)
                decoded.append((row, event))
            except Exception as exc:
                reason = str(exc) if isinstance(exc, DecodeError) else f"malformed payload: {exc}"
                logger.error("quarantined scheduled event %s: %s", row.event_id, reason)
                row.quarantine_reason, row.owner, row.lease_until = reason, None, None
        return decoded

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now = self._clock()
        due_limit = to_utc(due_before)
        claimed: list[ScheduledEvent] = []
        with self.database.lock:
            while len(claimed) < limit:  # rows quarantined on the way do not count
                candidates = sorted(
                    (
                        r
                        for r in self.database.scheduled.values()
                        if self._claimable(r, now) and r.due <= due_limit
                    ),
                    key=lambda r: (r.due, r.id),
                )[: limit - len(claimed)]
                if not candidates:
                    break
                for row, event in self._decoded(candidates):
                    row.owner, row.lease_until = owner, now + lease
                    claimed.append(event)
            return claimed

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        until = self._clock() + lease
        with self.database.lock:
            held = [r for r in self.database.scheduled.values() if r.owner == owner]
            for row in held:
                row.lease_until = until
            return {row.event_id for row in held}

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        with self.database.lock:
            rows = self.database.scheduled
            chosen = rows.values() if event_ids is None else (rows.get(i) for i in set(event_ids))
            held = [r for r in chosen if r is not None and r.owner == owner]
            for row in held:
                row.owner, row.lease_until = None, None
            return len(held)

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        scheduled = self.database.scheduled
        with self.database.lock:
            done = [i for i in set(event_ids) if i in scheduled and scheduled[i].owner == owner]
            for event_id in done:
                del scheduled[event_id]
            return len(done)

    def take_all(self) -> list[ScheduledEvent]:
        now = self._clock()
        with self.database.lock:
            rows = [r for r in self.database.scheduled.values() if self._claimable(r, now)]
            taken = self._decoded(rows)
            for row, _ in taken:
                del self.database.scheduled[row.event_id]
            return [event for _, event in taken]

    def next_due(self) -> datetime | None:
        now = self._clock()
        with self.database.lock:
            dues = [r.due for r in self.database.scheduled.values() if self._claimable(r, now)]
            return min(dues, default=None)

    def now(self) -> datetime:
        return to_utc(self._clock())

    def quarantined(self) -> list[QuarantinedEvent]:
        with self.database.lock:
            rows = sorted(
                (r for r in self.database.scheduled.values() if r.quarantine_reason is not None),
                key=lambda r: r.id,
            )
            return [
                QuarantinedEvent(
                    event_id=r.event_id,
                    event_class_name=r.event_class_name,
                    reason=r.quarantine_reason or "",
                    event_data=r.event_data,
                )
                for r in rows
            ]

    # --- EventLog -------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        now = self._clock()
        encoded = [(e, codec.loads(log_json(e))) for e in events]
        db = self.database
        with db.lock:
            for event, data in encoded:
                if event.event_id in db.logged_ids:
                    continue
                db.logged_ids.add(event.event_id)
                db.log.append(
                    LogEntry(
                        id=next(db.ids),
                        event_id=event.event_id,
                        event_class_name=type(event).__name__,
                        data=data,
                        session_id=None if event.session_id is None else str(event.session_id),
                        timestamp=parse_timestamp(event.timestamp) or now,
                        created_at=now,
                    )
                )

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
        low = None if since is None else to_utc(since)
        high = None if until is None else to_utc(until)

        def wanted(entry: LogEntry) -> bool:
            return (
                (session_id is None or entry.session_id == session_id)
                and (event_class is None or entry.event_class_name == event_class)
                and (low is None or entry.timestamp >= low)
                and (high is None or entry.timestamp < high)
                and (after_id is None or entry.id > after_id)
            )

        with self.database.lock:
            found = [entry for entry in self.database.log if wanted(entry)]
        return found if limit is None else found[:limit]

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        cutoff = to_utc(older_than)
        db = self.database
        with db.lock:
            keep: list[Any] = [e for e in db.log if e.timestamp >= cutoff]
            purged = len(db.log) - len(keep)
            for entry in db.log:
                if entry.timestamp < cutoff:
                    db.logged_ids.discard(entry.event_id)
            db.log[:] = keep
            return purged

    def trim(self, keep: int, *, batch_size: int = 1000) -> int:
        if batch_size <= 0 or keep < 0:
            raise ValueError("batch_size must be positive and keep not negative")
        db = self.database
        with db.lock:
            dropped = db.log[: max(len(db.log) - keep, 0)]
            for entry in dropped:
                db.logged_ids.discard(entry.event_id)
            del db.log[: len(dropped)]
            return len(dropped)
