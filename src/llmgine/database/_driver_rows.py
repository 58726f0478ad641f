"""The hot insert path: rows in the driver's own form, through one precompiled INSERT.

SQLAlchemy builds the statement (from the ORM models' tables, with the
dialect's ``ON CONFLICT DO NOTHING``) and compiles it once; each batch then
goes to the DBAPI's ``executemany`` through ``Connection.exec_driver_sql``,
skipping SQLAlchemy's per-row parameter processing, which otherwise costs
more than the driver itself. The values are what the column types would have
bound: JSON text for JSON columns, and for instants the form `UTCDateTime`
gives them on the dialect (see `driver_instant`). Dialects without a known
form keep SQLAlchemy's normal path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Insert

T = TypeVar("T")


YIELD_EVERY = 200
"""Rows built between two offers of the GIL to other threads (see `sharing_the_gil`)."""


def sharing_the_gil(rows: Iterable[T]) -> Iterator[T]:
    """``rows``, giving other threads a turn every `YIELD_EVERY` rows.

    Building a large batch is pure Python, which keeps the GIL until the
    interpreter forces a switch (5 ms). The writer is background work: an
    event loop running in another thread should not wait for it, so it yields.
    """
    for index, row in enumerate(rows, 1):
        yield row
        if index % YIELD_EVERY == 0:
            time.sleep(0)


def driver_instant(dialect: Dialect) -> Callable[[datetime], Any] | None:
    """How an aware-UTC instant is bound on ``dialect``, or None if unknown here.

    SQLite: SQLAlchemy's fixed-width text, ``YYYY-MM-DD HH:MM:SS.ffffff`` of
    the naive UTC value. PostgreSQL: ISO 8601 text with its UTC offset, which
    the statement casts to ``timestamptz`` (and COPY reads as is) whatever the
    session's time zone.
    """
    if dialect.name == "sqlite":
        # the wall part of the UTC isoformat is a fixed 26 characters: cut the "+00:00"
        return lambda instant: instant.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    if dialect.name == "postgresql":
        return lambda instant: instant.astimezone(UTC).isoformat()
    return None


class DriverInsert:
    """An INSERT compiled once for a dialect, run with the driver's ``executemany``."""

    def __init__(self, statement: Insert, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.inline().compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        positions = compiled.positiontup
        self._shape: Callable[[tuple[Any, ...]], Any] | None
        if positions is None:  # named parameters (psycopg's %(name)s)
            names = tuple(columns)
            self._shape = lambda values: dict(zip(names, values, strict=True))
        elif list(positions) == list(columns):
            self._shape = None  # rows are already in the driver's order
        else:
            order = [list(columns).index(name) for name in positions]
            self._shape = lambda values: tuple(values[i] for i in order)

    def execute(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in the order of ``columns``) in one ``executemany``."""
        shape = self._shape
        conn.exec_driver_sql(self.sql, rows if shape is None else [shape(row) for row in rows])


class CopyInsert:
    """PostgreSQL ``COPY`` for large batches, falling back to an idempotent INSERT.

    ``COPY`` cannot skip rows whose ``event_id`` is already stored, so it runs
    in a savepoint: if the batch meets a duplicate (a retry after a lost
    commit reply, or one event logged twice), the savepoint is rolled back and
    the batch goes through ``fallback`` (``INSERT ... ON CONFLICT DO NOTHING``).
    Rows are built as they are streamed, a chunk at a time, so the server
    parses one chunk while the next is being formatted.
    """

    MIN_ROWS = 64
    """Below this, an INSERT costs less than opening a COPY."""
    CHUNK = 500

    def __init__(self, table_sql: str, columns: Sequence[str], fallback: DriverInsert) -> None:
        self.sql = f"COPY {table_sql} ({', '.join(columns)}) FROM STDIN"
        self._fallback = fallback

    def execute(self, conn: Connection, rows: Iterable[tuple[Any, ...]], count: int) -> None:
        """Insert the ``count`` rows ``rows`` yields (values in the order of the columns)."""
        if count < self.MIN_ROWS:
            self._fallback.execute(conn, list(rows))
            return
        sent: list[tuple[Any, ...]] = []
        pending = iter(rows)
        try:
            with conn.begin_nested():
                cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(self.sql) as copy:
                    while chunk := list(islice(pending, self.CHUNK)):
                        sent += chunk
                        copy.write(copy_text(chunk))
        except Exception as exc:
            if not _is_unique_violation(exc):
                raise
            self._fallback.execute(conn, sent + list(pending))


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: list[tuple[str | None, ...]]) -> str:
    """``rows`` of text (or None) in COPY's text format: tab-separated lines, ``\\N`` for NULL.

    Formatting the whole batch here costs a fraction of the driver's row-by-row
    ``write_row``; only a field holding a backslash, tab or line break is escaped.
    """
    escapes = _COPY_ESCAPES
    lines = [
        "\t".join(
            [
                "\\N"
                if v is None
                else v.translate(escapes)
                if ("\\" in v or "\t" in v or "\n" in v or "\r" in v)
                else v
                for v in row
            ]
        )
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines)


def _is_unique_violation(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == "23505" or "UniqueViolation" in type(exc).__name__
