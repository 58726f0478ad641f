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

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    Insert,
    bindparam,
    column,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.elements import ColumnClause

T = TypeVar("T")


YIELD_EVERY = 200
"""Rows built between two offers of the GIL to other threads.

Building a large batch is pure Python, which keeps the GIL until the
interpreter forces a switch (5 ms). The writer is background work: an event
loop running in another thread should not wait for it, so it yields.
"""


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


def driver_utc_form(dialect: Dialect) -> tuple[str, str] | None:
    """`driver_instant`'s text as (date-time separator, suffix): the driver's form of a
    UTC wall time is ``YYYY-MM-DD`` + separator + ``HH:MM:SS.ffffff`` + suffix."""
    if dialect.name == "sqlite":
        return " ", ""
    if dialect.name == "postgresql":
        return "T", "+00:00"
    return None


class DriverInsert:
    """An INSERT compiled once for a dialect, run with the driver's ``executemany``."""

    def __init__(self, statement: Insert, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.inline().compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        self.dialect = dialect
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


_RAW_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A NUL in a string of the array (an escaped backslash before ``u0000`` is not one)."""


class JsonArrayInsert:
    """SQLite: a whole batch in one statement, from one JSON array of rows (``json_each``).

    The driver's ``executemany`` steps the statement once per row and takes the
    GIL back between rows; while an event loop keeps the GIL busy, each row
    then waits out the interpreter's switch interval. Here SQLite parses the
    array and inserts every row in a single step, without the GIL, so the
    writer runs beside the loop instead of taking turns with it. A batch
    orjson cannot encode (a string with a lone surrogate), or a SQLite built
    without its JSON functions, goes through ``fallback``.
    """

    def __init__(self, statement: Insert, columns: Sequence[str], fallback: DriverInsert) -> None:
        value: ColumnClause[Any] = column("value")
        rows = (
            select(
                *[
                    func.json_extract(value, literal_column(f"'$[{i}]'")).label(name)
                    for i, name in enumerate(columns)
                ]
            )
            .select_from(func.json_each(bindparam("rows")))
            .where(true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        )
        compiled = statement.from_select(list(columns), rows).compile(dialect=fallback.dialect)
        self.sql = compiled.string
        self._fallback = fallback
        self._supported: bool | None = None

    def execute(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in the order of ``columns``) in one statement."""
        array = self._array(rows) if self._supported is not False else None
        if array is not None:
            try:
                conn.exec_driver_sql(self.sql, (array,))
                self._supported = True
                return
            except sa_exc.OperationalError as exc:
                if self._supported or "no such" not in str(exc.orig):
                    raise
                self._supported = False  # this SQLite has no json_each
        self._fallback.execute(conn, rows)

    @staticmethod
    def _array(rows: list[tuple[Any, ...]]) -> str | None:
        """The JSON array of ``rows``, or None where it would not give back the same text."""
        try:
            array = orjson.dumps(rows)
        except orjson.JSONEncodeError:  # a lone surrogate: the driver refuses it as well
            return None
        if b"\\u0000" in array and _RAW_NUL.search(array):  # json_extract cuts text at NUL
            return None
        return array.decode()
