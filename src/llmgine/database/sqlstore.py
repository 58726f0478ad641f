"""The SQLAlchemy store: `ScheduledEventStore` and `EventLog` over one engine.

One class covers every SQLAlchemy dialect; what differs between them is
computed once into `Capabilities`. This module is the `ScheduledEventStore`
half; the `EventLog` half is `SqlEventLog` (``_sqllog.py``), and both stand on
`SqlBase` (``_sqlbase.py``: tables, lifecycle, transactions, error
translation). PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; SQLite
ignores ``FOR UPDATE``, so there each claim is a single ``UPDATE ...
RETURNING`` inside a ``BEGIN IMMEDIATE`` transaction (see
`llmgine.database.connect`), which SQLite runs one writer at a time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Interval,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.sql.sqltypes import NullType

from llmgine.database import codec
from llmgine.database._driver_rows import (
    CopyInsert,
    DriverInsert,
)
from llmgine.database._sqlbase import chunks, first_line, qualified_table
from llmgine.database._sqllog import SqlEventLog
from llmgine.database.config import PoolSettings, normalize_url
from llmgine.database.connect import create_engine_for
from llmgine.database.instants import to_utc
from llmgine.database.log_rows import MAX_NAME
from llmgine.database.store import QuarantinedEvent
from llmgine.errors import (
    DecodeError,
    UnstorableEventError,
)
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)

_MAX_NAME = MAX_NAME


class SQLAlchemyStore(SqlEventLog):
    """A `ScheduledEventStore` and `EventLog` on any SQLAlchemy engine.

    The store creates its schema and tables on first use (and again after
    they vanish), records ``schema_version`` and refuses tables written by a
    newer llmgine. A store given an engine never disposes it; one made by
    `from_url` owns its engine and disposes it in `close`.
    """

    def _prepare(self) -> None:
        super()._prepare()
        self._scheduled_insert: DriverInsert | CopyInsert | None = self._driver_insert(
            self._tables.scheduled, _SCHEDULED_COLUMNS
        )
        if self._scheduled_insert is not None and self._caps.copy:
            self._scheduled_insert = CopyInsert(
                qualified_table(self._engine, self._tables.scheduled),
                _SCHEDULED_COLUMNS,
                self._scheduled_insert,
            )
        # The statements the scheduler runs all the time, built once with bound
        # parameters: building them per call costs more CPU than running them.
        t = self._tables.scheduled
        now: Any
        lease_until: Any
        if self._server_clock:
            now = func.statement_timestamp()
            lease_until = now + bindparam("p_lease", type_=Interval())
        else:
            now = bindparam("p_now", type_=t.c.lease_until.type)
            lease_until = bindparam("p_lease_until", type_=t.c.lease_until.type)
        claimable = and_(
            t.c.quarantine_reason.is_(None), or_(t.c.owner.is_(None), t.c.lease_until < now)
        )
        self._claimable = claimable
        self._chosen = (
            select(t.c.id)
            .where(claimable, t.c.scheduled_time <= bindparam("p_due_before"))
            .order_by(t.c.scheduled_time, t.c.id)
            .limit(bindparam("p_limit"))
            .with_for_update(skip_locked=self._caps.skip_locked)
        )
        self._claim = (
            update(t)
            .where(t.c.id.in_(self._chosen.scalar_subquery()))
            .values(owner=bindparam("p_owner"), lease_until=lease_until)
            .returning(*self._row_columns())
        )
        self._renew = (
            update(t).where(t.c.owner == bindparam("p_owner")).values(lease_until=lease_until)
        )
        self._now = select(now)
        self._next_due = (
            select(t.c.scheduled_time).where(claimable).order_by(t.c.scheduled_time).limit(1)
        )

    def _at_now(self, lease: timedelta = timedelta(0)) -> dict[str, Any]:
        """The parameters that say "now" (and "now + lease") to the prepared statements:
        none but the lease on the server's clock, the store's clock reading otherwise."""
        if self._server_clock:
            return {"p_lease": lease}
        now = self._clock()
        return {"p_now": now, "p_lease_until": now + lease}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str = "message_bus",
        clock: Callable[[], datetime] | None = None,
        pool: PoolSettings | None = None,
    ) -> SQLAlchemyStore:
        """A store on a new engine for ``url``, with ``schema`` and ``pool`` as on
        `DatabaseConfig` (``clock``: see `SqlBase`; None measures leases on the server's
        clock where there is one)."""
        from llmgine.database.config import DatabaseConfig

        config = DatabaseConfig(db_url=url, schema=schema, persist_events=False)
        engine = create_engine_for(normalize_url(url), pool=pool)
        store = cls(engine, naming=config.naming, clock=clock)
        store._owns_engine = True
        return store

    @classmethod
    def from_environment(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> SQLAlchemyStore:
        """A store on the database and tables the environment configures (``LLMGINE_DB_URL``,
        ``LLMGINE_DB_SCHEMA``, the pool variables): the ones the environment-driven bus and
        the module functions use. For reading the event log back, for instance. It owns a
        new engine: `close` it when done. Raises `ConfigurationError` for an invalid setting.
        """
        from llmgine.database.config import DatabaseConfig

        config = DatabaseConfig(environ=environ)
        store = cls(
            create_engine_for(config.url, pool=config.pool), naming=config.naming, clock=clock
        )
        store._owns_engine = True
        return store

    # --- ScheduledEventStore ---------------------------------------------------------

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        if not events:
            return
        now = self._clock()
        fast, to_driver = self._scheduled_insert, self._caps.instant
        if fast is not None and to_driver is not None:
            created = to_driver(now)
            driver_rows = [
                (event_id, name, codec.dumps(payload), to_driver(due), created)
                for event_id, name, payload, due in map(_scheduled_values, events)
            ]  # encoded before the transaction: an unstorable event changes nothing
            with self._begin("add") as conn:
                if isinstance(fast, CopyInsert):
                    fast.execute(conn, driver_rows, len(driver_rows))
                else:
                    fast.execute(conn, driver_rows)
            return
        rows = [
            dict(zip(_SCHEDULED_COLUMNS, (*_scheduled_values(event), now), strict=True))
            for event in events
        ]
        with self._begin("add") as conn:
            self._insert_ignoring_duplicates(conn, self._tables.scheduled, rows)

    def _row_columns(self) -> tuple[Any, ...]:
        """What claims and restores read back. The due instant comes as the driver gives it
        (fixed-width UTC text on SQLite, a datetime on PostgreSQL), which sorts by instant
        and is only sorted on: parsing it into a datetime per row costs more than decoding."""
        t = self._tables.scheduled
        return (
            t.c.id,
            t.c.event_id,
            t.c.event_class_name,
            cast(t.c.event_data, Text),
            type_coerce(t.c.scheduled_time, NullType()).label("scheduled_time"),
        )

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        if limit <= 0:
            return []
        t = self._tables.scheduled
        params = self._at_now(lease)
        params.update(p_due_before=due_before, p_owner=owner)
        claimed: list[ScheduledEvent] = []
        with self._begin("claim") as conn:
            while True:
                params["p_limit"] = limit - len(claimed)
                if self._caps.returning:
                    rows = conn.execute(self._claim, params).all()
                else:
                    ids = list(conn.scalars(self._chosen, params))
                    for chunk in chunks(ids):
                        conn.execute(
                            update(t)
                            .where(t.c.id.in_(chunk))
                            .values(owner=owner, lease_until=params["p_lease_until"])
                        )
                    rows = self._select_rows(conn, ids)
                events = self._decode_rows(conn, rows)
                claimed.extend(events)
                # Rows quarantined on the way do not count: claim again for the room they took.
                if len(events) == len(rows) or len(claimed) >= limit:
                    return claimed

    def _select_rows(self, conn: Connection, ids: list[int]) -> list[Any]:
        t = self._tables.scheduled
        rows: list[Any] = []
        for chunk in chunks(ids):
            rows.extend(conn.execute(select(*self._row_columns()).where(t.c.id.in_(chunk))).all())
        return rows

    def _decode_all(
        self, rows: Sequence[Any]
    ) -> tuple[list[ScheduledEvent], list[tuple[Any, str]]]:
        """Decode rows in due order; return the events and the (row, reason) that failed."""
        events: list[ScheduledEvent] = []
        refused: list[tuple[Any, str]] = []
        decode, loads = codec.decode_event, codec.loads
        for row in sorted(rows, key=lambda r: (_due_key(r.scheduled_time), r.id)):
            try:
                events.append(decode(row.event_class_name, loads(row[3]), row.event_id))
            except Exception as exc:
                reason = _reason(exc)
                logger.error(
                    "quarantined scheduled event %s (%s) at %s: %s",
                    row.event_id,
                    row.event_class_name,
                    self._where,
                    reason,
                )
                refused.append((row, reason))
        return events, refused

    def _decode_rows(self, conn: Connection, rows: Sequence[Any]) -> list[ScheduledEvent]:
        """Decode claimed rows in due order; quarantine (and un-own) the ones that fail."""
        t = self._tables.scheduled
        events, refused = self._decode_all(rows)
        for row, reason in refused:
            conn.execute(
                update(t)
                .where(t.c.id == row.id)
                .values(quarantine_reason=reason, owner=None, lease_until=None)
            )
        return events

    def _put_back_quarantined(self, conn: Connection, refused: list[tuple[Any, str]]) -> None:
        """Re-insert rows deleted by `take_all` that did not decode, with their reason."""
        t = self._tables.scheduled
        for row, reason in refused:
            data: Any = type_coerce(row[3], Text())
            if self._caps.schemas:  # PostgreSQL's JSON column takes text through a cast
                data = cast(data, JSON)
            conn.execute(
                insert(t).values(
                    id=row.id,
                    event_id=row.event_id,
                    event_class_name=row.event_class_name,
                    event_data=data,
                    scheduled_time=type_coerce(row.scheduled_time, NullType()),
                    created_at=type_coerce(row.created_at, NullType()),
                    quarantine_reason=reason,
                )
            )

    def renew(self, owner: str, *, lease: timedelta) -> set[str]:
        t = self._tables.scheduled
        params = self._at_now(lease)
        params["p_owner"] = owner
        with self._begin("renew") as conn:
            if self._caps.returning:
                return set(conn.scalars(self._renew.returning(t.c.event_id), params))
            conn.execute(self._renew, params)
            return set(conn.scalars(select(t.c.event_id).where(t.c.owner == owner)))

    def release(self, owner: str, event_ids: Collection[str] | None = None) -> int:
        t = self._tables.scheduled
        release = update(t).values(owner=None, lease_until=None)
        with self._begin("release") as conn:
            if event_ids is None:
                return int(conn.execute(release.where(t.c.owner == owner)).rowcount)
            done = 0
            for chunk in chunks(list(event_ids)):
                result = conn.execute(release.where(t.c.owner == owner, t.c.event_id.in_(chunk)))
                done += int(result.rowcount)
            return done

    def complete(self, owner: str, event_ids: Collection[str]) -> int:
        t = self._tables.scheduled
        done = 0
        with self._begin("complete") as conn:
            for chunk in chunks(list(event_ids)):
                result = conn.execute(delete(t).where(t.c.owner == owner, t.c.event_id.in_(chunk)))
                done += int(result.rowcount)
        return done

    def take_all(self) -> list[ScheduledEvent]:
        t = self._tables.scheduled
        at_now = self._at_now()
        chosen = (
            select(t.c.id)
            .where(self._claimable)
            .with_for_update(skip_locked=self._caps.skip_locked)
        )
        with self._begin("take_all") as conn:
            if self._caps.returning:
                # One pass: delete the chosen rows, returning them. A row that does not
                # decode is put back, as it was, with its reason, in the same transaction,
                # so no one ever sees it deleted. A row added meanwhile is not chosen.
                take = (
                    delete(t)
                    .where(t.c.id.in_(chosen.scalar_subquery()))
                    .returning(
                        *self._row_columns(),
                        type_coerce(t.c.created_at, NullType()).label("created_at"),
                    )
                )
                rows = conn.execute(take, at_now).all()
                events, refused = self._decode_all(rows)
                if refused:
                    self._put_back_quarantined(conn, refused)
                return events
            # Without RETURNING: mark the chosen rows, decode, delete exactly those that decoded.
            token = f"take_all:{uuid.uuid4()}"
            ids = list(conn.scalars(chosen, at_now))
            for chunk in chunks(ids):
                conn.execute(
                    update(t).where(t.c.id.in_(chunk)).values(owner=token, lease_until=None)
                )
            events = self._decode_rows(conn, self._select_rows(conn, ids))
            conn.execute(delete(t).where(t.c.owner == token))
            return events

    def next_due(self) -> datetime | None:
        with self._reading("next_due") as conn:
            if conn is None:
                return None
            due: datetime | None = conn.scalar(self._next_due, self._at_now())
            return due

    def now(self) -> datetime:
        if not self._server_clock:
            return to_utc(self._clock())
        with self._errors("now"), self._engine.connect() as conn:  # no tables needed
            now = conn.scalar(self._now)
            assert isinstance(now, datetime)
            return now.astimezone(UTC)

    def quarantined(self) -> list[QuarantinedEvent]:
        t = self._tables.scheduled
        query = (
            select(
                t.c.event_id,
                t.c.event_class_name,
                t.c.quarantine_reason,
                cast(t.c.event_data, Text),
            )
            .where(t.c.quarantine_reason.isnot(None))
            .order_by(t.c.id)
        )
        with self._reading("quarantined") as conn:
            if conn is None:
                return []
            return [
                QuarantinedEvent(
                    event_id=row[0], event_class_name=row[1], reason=row[2], event_data=row[3]
                )
                for row in conn.execute(query)
            ]

    # --- EventLog -------------------------------------------------------------------


_SCHEDULED_COLUMNS = ("event_id", "event_class_name", "event_data", "scheduled_time", "created_at")


def _scheduled_values(event: ScheduledEvent) -> tuple[str, str, Any, datetime]:
    """(event_id, class name, payload, due instant); raises `UnstorableEventError`."""
    _check_name("event_id", event.event_id, event)
    _check_name("class name", type(event).__name__, event)
    if not isinstance(event.scheduled_time, datetime):
        raise UnstorableEventError(
            f"{type(event).__qualname__}.scheduled_time is a "
            f"{type(event.scheduled_time).__name__}, not a datetime"
        )
    payload = codec.encode_event(event)
    return event.event_id, type(event).__name__, payload, to_utc(event.scheduled_time)


def _due_key(raw: Any) -> Any:
    """A raw due instant as a sort key. SQLite's fixed-width UTC text sorts as it is. A
    driver's datetime is put in UTC first: datetimes that share a tzinfo (the session's
    zone) compare by wall clock, ignoring ``fold``, so a DST repeat would sort wrong."""
    return raw.astimezone(UTC) if isinstance(raw, datetime) else raw


def _check_name(what: str, value: object, event: Event) -> None:
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME or "\x00" in value:
        raise UnstorableEventError(
            f"{type(event).__qualname__}: {what} must be a non-empty string of at most "
            f"{_MAX_NAME} characters without NUL, not {value!r:.80}"
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, DecodeError):
        return str(exc)
    return f"malformed payload: {type(exc).__name__}: {first_line(exc)}"
