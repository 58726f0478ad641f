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

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Insert


def driver_instant(dialect: Dialect) -> Callable[[datetime], Any] | None:
    """How an aware-UTC instant is bound on ``dialect``, or None if unknown here.

    SQLite: SQLAlchemy's fixed-width text, ``YYYY-MM-DD HH:MM:SS.ffffff`` of
    the naive UTC value. PostgreSQL: the aware datetime (``timestamptz``).
    """
    if dialect.name == "sqlite":
        # the wall part of the UTC isoformat is a fixed 26 characters: cut the "+00:00"
        return lambda instant: instant.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    if dialect.name == "postgresql":
        return lambda instant: instant
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
