"""The SQL store's `EventLog` half: appends on the driver-level fast path, reads, retention.

A batch goes in as one transaction: on SQLite one statement from a JSON array
(`JsonArrayInsert`), on PostgreSQL ``COPY`` (`CopyInsert`), elsewhere
SQLAlchemy's ``INSERT``, always idempotent by ``event_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from llmgine.database import codec
from llmgine.database._driver_rows import (
    CopyInsert,
    DriverInsert,
    JsonArrayInsert,
    driver_utc_form,
)
from llmgine.database._sqlbase import SqlBase, chunks, qualified_table
from llmgine.database.log_rows import LOG_COLUMNS, DriverLogRows, log_values
from llmgine.database.store import LogEntry
from llmgine.messages.events import Event


class SqlEventLog(SqlBase):
    """`EventLog` on a SQLAlchemy engine (see `SQLAlchemyStore`)."""

    def _prepare(self) -> None:
        super()._prepare()
        self._log_insert: DriverInsert | CopyInsert | JsonArrayInsert | None = self._driver_insert(
            self._tables.log, LOG_COLUMNS
        )
        if self._log_insert is not None and self._caps.copy:
            self._log_insert = CopyInsert(
                qualified_table(self._engine, self._tables.log), LOG_COLUMNS, self._log_insert
            )
        elif self._log_insert is not None and self._caps.json_array:
            assert self._caps.on_conflict is not None
            self._log_insert = JsonArrayInsert(
                self._caps.on_conflict(self._tables.log), LOG_COLUMNS, self._log_insert
            )
        utc_form = driver_utc_form(self._engine.dialect)
        self._log_rows = (
            DriverLogRows(self._caps.instant, utc_form)
            if self._caps.instant is not None and utc_form is not None
            else None
        )

    def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        now = self._clock()
        fast, driver_rows = self._log_insert, self._log_rows
        if fast is not None and driver_rows is not None:
            rows = driver_rows.rows(events, now)
            if isinstance(fast, CopyInsert):
                with self._begin("append") as conn:  # rows built as they stream to the server
                    fast.execute(conn, rows, len(events))
                return
            built = list(rows)  # built before the transaction: SQLite locks the whole file
            with self._begin("append") as conn:
                fast.execute(conn, built)
            return
        dict_rows = [
            dict(zip(LOG_COLUMNS, (*log_values(event, now), now), strict=True)) for event in events
        ]
        with self._begin("append") as conn:
            self._insert_ignoring_duplicates(conn, self._tables.log, dict_rows)

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
        t = self._tables.log
        query = select(t).order_by(t.c.id)
        if session_id is not None:
            query = query.where(t.c.session_id == session_id)
        if event_class is not None:
            query = query.where(t.c.event_class_name == event_class)
        if since is not None:
            query = query.where(t.c.timestamp >= since)
        if until is not None:
            query = query.where(t.c.timestamp < until)
        if after_id is not None:
            query = query.where(t.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        with self._reading("read") as conn:
            if conn is None:
                return []
            return [
                LogEntry(
                    id=row.id,
                    event_id=row.event_id,
                    event_class_name=row.event_class_name,
                    data=_json_or_text(row.event_data),
                    session_id=row.session_id,
                    timestamp=row.timestamp,
                    created_at=row.created_at,
                )
                for row in conn.execute(query)
            ]

    def purge(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        return self._delete_in_batches(
            "purge", self._tables.log.c.timestamp < older_than, batch_size
        )

    def trim(self, keep: int, *, batch_size: int = 1000) -> int:
        if batch_size <= 0 or keep < 0:
            raise ValueError("batch_size must be positive and keep not negative")
        t = self._tables.log
        newest_dropped = select(t.c.id).order_by(t.c.id.desc()).offset(keep).limit(1)
        with self._begin("trim") as conn:
            last: int | None = conn.scalar(newest_dropped)
        return 0 if last is None else self._delete_in_batches("trim", t.c.id <= last, batch_size)

    def _delete_in_batches(self, operation: str, condition: Any, batch_size: int) -> int:
        """Delete the entries matching ``condition``, oldest first, ``batch_size`` per
        transaction; return how many went."""
        t = self._tables.log
        batch = select(t.c.id).where(condition).order_by(t.c.id).limit(batch_size)
        total = 0
        while True:
            with self._begin(operation) as conn:
                ids = list(conn.scalars(batch))
                for chunk in chunks(ids):
                    conn.execute(delete(t).where(t.c.id.in_(chunk)))
            total += len(ids)
            if len(ids) < batch_size:
                return total


def _json_or_text(text: str) -> Any:
    try:
        return codec.loads(text)
    except ValueError:
        return text
