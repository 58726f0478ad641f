"""Upgrading, in place, the tables the original llmgine module left behind.

The original created ``scheduled_events`` and ``event_log`` (same names, same
schema or prefix) without a ``llmgine_meta`` table, without ``owner``,
``lease_until`` and ``quarantine_reason``, without a unique ``event_id`` and
with instants as naive local ``DATETIME`` values. `upgrade_original_tables`
runs inside `setup`'s transaction (under its advisory lock on PostgreSQL), so
the upgrade happens once, whole or not at all:

- each instant is read as the naive local time it is and written back as the
  instant it names (PostgreSQL: the column becomes ``timestamp with time zone``;
  SQLite: the fixed-width UTC text the store compares);
- the missing columns are added, and the indexes and unique ``event_id`` created;
  a row repeating an earlier row's ``event_id`` (the original could save an event
  twice) is the same event: the earliest row is kept, the others deleted, logged.

Rows keep their payloads: the codec reads the original's (ISO strings, no tags).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Table,
    bindparam,
    delete,
    func,
    inspect,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.schema import UniqueConstraint

from llmgine.database.instants import to_utc
from llmgine.database.models import Tables

logger = logging.getLogger(__name__)

_INSTANTS = {"scheduled": ("scheduled_time", "created_at"), "log": ("timestamp", "created_at")}


def original_tables(conn: Connection, tables: Tables) -> list[str]:
    """Which of ``tables`` exist without a ``llmgine_meta`` beside them: the original's."""
    found = inspect(conn)
    if found.has_table(tables.meta.name, schema=tables.meta.schema):
        return []
    return [
        kind
        for kind, table in (("scheduled", tables.scheduled), ("log", tables.log))
        if found.has_table(table.name, schema=table.schema)
    ]


def upgrade_original_tables(conn: Connection, tables: Tables, kinds: Iterable[str]) -> None:
    """Bring the original's tables named in ``kinds`` ("scheduled", "log") up to date."""
    for kind in kinds:
        table = tables.scheduled if kind == "scheduled" else tables.log
        present = {c["name"] for c in inspect(conn).get_columns(table.name, schema=table.schema)}
        _convert_instants(conn, table, _INSTANTS[kind])
        for column in table.columns:
            if column.name not in present:
                _add_column(conn, table, column)
        _deduplicate(conn, table)
        _create_indexes(conn, table)
        logger.warning("upgraded %s, written by the original llmgine module", table.fullname)


def _convert_instants(conn: Connection, table: Table, names: tuple[str, ...]) -> None:
    """Naive local values become the instants they name, in the store's column type."""
    raw = [type_coerce(table.c[name], _NaiveOrText()).label(name) for name in names]
    rows = conn.execute(select(table.c.id, *raw)).all()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        for name in names:
            conn.execute(
                text(
                    f"ALTER TABLE {_qualified(conn, table)} ALTER COLUMN {_q(conn, name)} "
                    f"TYPE timestamp with time zone USING {_q(conn, name)} AT TIME ZONE 'UTC'"
                )
            )
    if not rows:
        return
    values = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}
    statement = update(table).where(table.c.id == bindparam("v_id")).values(**values)
    params: list[dict[str, Any]] = []
    for row in rows:
        entry: dict[str, Any] = {"v_id": row.id}
        for name in names:
            entry[f"v_{name}"] = to_utc(_naive(getattr(row, name)))
        params.append(entry)
    conn.execute(statement, params)


class _NaiveOrText(DateTime):
    """Read a column as the driver gives it: a naive datetime, or SQLite's text."""

    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


def _naive(value: datetime | str) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed


def _add_column(conn: Connection, table: Table, column: Column[Any]) -> None:
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(
        text(f"ALTER TABLE {_qualified(conn, table)} ADD COLUMN {_q(conn, column.name)} {kind}")
    )


def _deduplicate(conn: Connection, table: Table) -> None:
    first = select(func.min(table.c.id)).group_by(table.c.event_id).scalar_subquery()
    gone = conn.execute(delete(table).where(table.c.id.not_in(first))).rowcount
    if gone:
        logger.warning(
            "%s: %d rows repeated an earlier row's event_id; the earliest of each was kept",
            table.fullname,
            gone,
        )


def _create_indexes(conn: Connection, table: Table) -> None:
    """The table's indexes, and its unique constraint as a unique index (SQLite cannot add
    a constraint to a table; ``ON CONFLICT (event_id)`` works with either)."""
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and isinstance(constraint.name, str):
            columns = ", ".join(_q(conn, c.name) for c in constraint.columns)
            conn.execute(
                text(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {_q(conn, constraint.name)} "
                    f"ON {_qualified(conn, table)} ({columns})"
                )
            )
    for index in table.indexes:
        index.create(conn, checkfirst=True)


def _q(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))


def _qualified(conn: Connection, table: Table) -> str:
    name = _q(conn, table.name)
    if table.schema:
        return f"{conn.dialect.identifier_preparer.quote_schema(table.schema)}.{name}"
    return name
