"""A store that keeps scheduled events and the event log in one JSON file.

The conformance suite's worked example, written as a third party would write
a store: it shares no code with llmgine's own stores, only the public codec
(events to JSON payloads and back) and `to_utc` (any datetime to the aware-UTC
instant that is compared).

Every method is one transaction: take an exclusive `fcntl.flock` on
``<file>.lock``, read the whole document, change it, write it to a temporary
file, fsync it and `os.replace` it over the old one. Each transaction opens
the lock file anew, so the lock excludes other threads as well as other
processes; the replace means a crash leaves the old document or the new one,
never half of each. A method that raises has changed nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmgine.database.codec import decode_event, dumps, encode_event, loads
from llmgine.database.instants import to_utc
from llmgine.database.store import LogEntry, QuarantinedEvent
from llmgine.errors import StoreUnavailableError, UnstorableEventError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)


def _stamp(value: datetime) -> str:
    """An instant as ISO text in UTC, microseconds always written."""
    return to_utc(value).isoformat(timespec="microseconds")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Row:
    """A scheduled event as the file keeps it."""

    id: int
    event_id: str
    event_class_name: str
    event_data: str  # the payload's JSON text, exactly as stored
    due: str  # a `_stamp`
    owner: str | None = None
    lease_until: str | None = None
    quarantine_reason: str | None = None

    def order(self) -> tuple[datetime, int]:
        return _instant(self.due), self.id

    def claimable(self, now: datetime) -> bool:
        expired = self.lease_until is not None and _instant(self.lease_until) < now
        return self.quarantine_reason is None and (self.owner is None or expired)


@dataclass
class _Entry:
    """An event-log entry as the file keeps it."""

    id: int
    event_id: str
    event_class_name: str
    event_data: str
    session_id: str | None
    timestamp: str
    created_at: str

    def entry(self) -> LogEntry:
        return LogEntry(
            id=self.id,
            event_id=self.event_id,
            event_class_name=self.event_class_name,
            data=loads(self.event_data),
            session_id=self.session_id,
            timestamp=_instant(self.timestamp),
            created_at=_instant(self.created_at),
        )


@dataclass
class _Document:
    """Everything the file holds."""

    next_id: int = 1
    scheduled: list[_Row] = field(default_factory=list)
    log: list[_Entry] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> _Document:
        if not text:
            return cls()
        raw = json.loads(text)
        rows, entries = raw["scheduled"], raw["log"]
        return cls(raw["next_id"], [_Row(**r) for r in rows], [_Entry(**e) for e in entries])

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class FileStore:
    """A `ScheduledEventStore` and `EventLog` in the JSON file at ``path``.

    Stores on one path share their rows, in one process or many. Leases are
    measured with ``clock``.
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._clock = clock

    def close(self) -> None:
        """Nothing is held between calls, so there is nothing to release."""

    @contextmanager
    def _transaction(self) -> Iterator[_Document]:
        """The document, under the exclusive lock; written back if the body changed it."""
        try:
            with open(self._lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file is closed
                text = self.path.read_text() if self.path.exists() else ""
                document = _Document.parse(text)
                yield document
                changed = json.dumps(asdict(document))
                if changed != text:
                    self._replace(changed)
        except OSError as exc:
            raise StoreUnavailableError(f"{self.path}: {exc}") from exc

    def _replace(self, text: str) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename is durable too
        finally:
            os.close(directory)

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        """Store a row exactly as given, bypassing the codec (to test undecodable rows)."""
        with self._transaction() as document:
            row = _Row(document.new_id(), event_id, event_class_name, event_data, _stamp(due))
            document.scheduled.append(row)

    # --- ScheduledEventStore -----------------------------------------------------------------

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        rows = []
        for event in events:  # encode every event before writing any
            if not isinstance(event.scheduled_time, datetime):
                raise UnstorableEventError(
                    f"{type(event).__qualname__}.scheduled_time: not a datetime"
                )
            data = dumps(encode_event(event))
            rows.append((event.event_id, type(event).__name__, data, _stamp(event.scheduled_time)))
        with self._transaction() as document:
            stored = {row.event_id for row in document.scheduled}
            for event_id, name, data, due in rows:
                if event_id not in stored:  # idempotent: the first due time stays
                    stored.add(event_id)
                    document.scheduled.append(_Row(document.new_id(), event_id, name, data, due))

    def _decoded(self, rows: list[_Row]) -> list[tuple[_Row, ScheduledEvent]]:
        """Decode ``rows`` in due order; quarantine (and log, once) each row that fails."""
        decoded = []
        for row in sorted(rows, key=_Row.order):
            try:
                payload = loads(row.event_data)
                decoded.append((row, decode_event(row.event_class_name, payload, row.event_id)))
            except Exception as exc:
                row.quarantine_reason = f"{type(exc).__name__}: {exc}"
                row.owner = row.lease_until = None
                logger.error("quarantined event %s: %s", row.event_id, row.quarantine_reason)
        return decoded

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        now, cutoff = to_utc(self._clock()), to_utc(due_before)
        claimed: list[ScheduledEvent] = []
        with self._transaction() as document:
            while len(claimed) < limit:  # a row quarantined on the way leaves room for another
                due = [
                    r for r in document.scheduled if r.claimable(now) and _instant(r.due) <= cutoff
                ]
                chosen = sorted(due, key=_Row.order)[: limit - len(claimed)]
                if not chosen:
                    break
                for row, event in self._decoded(chosen):
                    row.owner, row.lease_until = owner, _stamp(now + lease)
                    claimed.append(event)
        return claimed

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        until = _stamp(to_utc(self._clock()) + lease)
        with self._transaction() as document:
            held = [row for row in document.scheduled if row.owner == owner]
            for row in held:
                row.lease_until = until
        return {row.event_id for row in held}

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        with self._transaction() as document:
            held = [
                row
                for row in document.scheduled
                if row.owner == owner and (event_ids is None or row.event_id in event_ids)
            ]
            for row in held:
                row.owner = row.lease_until = None
        return len(held)

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        ids = set(event_ids)
        with self._transaction() as document:
            kept = [r for r in document.scheduled if not (r.owner == owner and r.event_id in ids)]
            done = len(document.scheduled) - len(kept)
            document.scheduled = kept
        return done

    def now(self) -> datetime:
        return to_utc(self._clock())

    def take_all(self) -> list[ScheduledEvent]:
        now = to_utc(self._clock())
        with self._transaction() as document:
            taken = self._decoded([row for row in document.scheduled if row.claimable(now)])
            gone = {row.id for row, _ in taken}
            document.scheduled = [row for row in document.scheduled if row.id not in gone]
        return [event for _, event in taken]

    def next_due(self) -> datetime | None:
        now = to_utc(self._clock())
        with self._transaction() as document:
            dues = [_instant(row.due) for row in document.scheduled if row.claimable(now)]
        return min(dues, default=None)

    def quarantined(self) -> list[QuarantinedEvent]:
        with self._transaction() as document:
            rows = [row for row in document.scheduled if row.quarantine_reason is not None]
        return [
            QuarantinedEvent(
                event_id=row.event_id,
                event_class_name=row.event_class_name,
                reason=row.quarantine_reason or "",
                event_data=row.event_data,
            )
            for row in sorted(rows, key=lambda row: row.id)
        ]

    # --- EventLog ----------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        now = to_utc(self._clock())
        created, entries = _stamp(now), []
        for event in events:  # a value the codec cannot encode is kept as its repr
            data = dumps(encode_event(event, strict=False))
            session = None if event.session_id is None else str(event.session_id)
            when = _stamp(_timestamp(event.timestamp) or now)
            entries.append((event.event_id, type(event).__name__, data, session, when))
        with self._transaction() as document:
            logged = {entry.event_id for entry in document.log}
            for event_id, name, data, session, when in entries:
                if event_id not in logged:  # idempotent: a retry never duplicates
                    logged.add(event_id)
                    entry = _Entry(document.new_id(), event_id, name, data, session, when, created)
                    document.log.append(entry)

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
        with self._transaction() as document:
            entries = [entry.entry() for entry in document.log]
        found = [
            e
            for e in entries
            if (session_id is None or e.session_id == session_id)
            and (event_class is None or e.event_class_name == event_class)
            and (low is None or e.timestamp >= low)
            and (high is None or e.timestamp < high)
            and (after_id is None or e.id > after_id)
        ]
        return found if limit is None else found[:limit]

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        cutoff, total = to_utc(older_than), 0
        while True:  # one transaction per batch, so a large purge never holds the lock long
            with self._transaction() as document:
                old = [e.id for e in document.log if _instant(e.timestamp) < cutoff]
                batch = set(old[:batch_size])
                document.log = [e for e in document.log if e.id not in batch]
            total += len(batch)
            if len(batch) < batch_size:
                return total

    def trim(self, keep: int, *, batch_size: int = 1000) -> int:
        if batch_size <= 0 or keep < 0:
            raise ValueError("batch_size must be positive and keep not negative")
        total = 0
        while True:
            with self._transaction() as document:
                excess = max(len(document.log) - keep, 0)
                batch = min(excess, batch_size)
                document.log = document.log[batch:]
            total += batch
            if batch < batch_size:
                return total


def _timestamp(value: object) -> datetime | None:
    """An event's ``timestamp`` (an ISO string or a datetime) as an instant, or None."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
        return to_utc(when) if isinstance(when, datetime) else None
    except (ValueError, UnstorableEventError):
        return None
