"""The raw drivers' limit: finished rows, an open connection, and only the driver call timed.

A baseline writes into the store's own table (made by ``store.setup()``: the
same columns, unique ``event_id`` and indexes), over a connection opened and
configured before the clock starts as the store configures its own (SQLite:
WAL, ``synchronous=FULL``; PostgreSQL: the server's settings, untouched). The
rows it is given are already the driver's input: text for every value on
SQLite, COPY's text format on PostgreSQL. Between its two readings of `clock`
runs nothing but the driver: SQLite ``BEGIN IMMEDIATE``, ``executemany``,
``COMMIT``; PostgreSQL ``COPY ... FROM STDIN`` of the text, ``COMMIT``.
``tests/test_benchmarks.py`` replaces `clock` to check exactly that.

`describe` reads each setting back from the connection, so the printed table
says what was measured rather than what was meant.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Engine, inspect

from llmgine.database._driver_rows import copy_text, driver_instant
from llmgine.database.sqlstore import SQLAlchemyStore

clock: Callable[[], float] = time.perf_counter
"""The clock every baseline reads, twice; the tests replace it to see what runs between."""

Rows = list[tuple[Any, ...]]


def finish(store: SQLAlchemyStore, rows: Sequence[tuple[Any, ...]]) -> Rows:
    """``rows`` in the driver's own form for ``store``'s database: instants as the text the
    store binds (`driver_instant`), every other value as it is. Run before the clock."""
    instant = driver_instant(store.engine.dialect)
    assert instant is not None
    return [tuple(v if isinstance(v, str) or v is None else instant(v) for v in r) for r in rows]


class RawWriter:
    """A raw driver connection to ``store``'s database, for its table ``table``."""

    driver: str
    """What the timed region runs, e.g. ``sqlite3 executemany``."""

    def write(self, columns: Sequence[str], rows: Rows) -> float:
        """Seconds to write ``rows`` (finished: see `finish`) in one transaction."""
        raise NotImplementedError

    def take_all(self, columns: Sequence[str]) -> float:
        """Seconds to select and delete every row in one transaction, reading them all."""
        raise NotImplementedError

    def count(self) -> int:
        """Rows in the table, as this (other) connection sees them: committed rows only."""
        raise NotImplementedError

    def describe(self) -> str:
        """The setup as the database reports it: journal, sync, constraints, indexes."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> RawWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def raw_writer(store: SQLAlchemyStore, table: Any) -> RawWriter:
    """The raw driver for ``store``'s database (SQLite or PostgreSQL), on ``table``."""
    if store.engine.url.get_backend_name() == "postgresql":
        return PostgresCopy(store, table)
    return SqliteExecutemany(store, table)


def _indexes(engine: Engine, table: Any) -> str:
    """``table``'s unique constraints and indexes, as SQLAlchemy's inspector reads them."""
    inspector = inspect(engine)
    unique = [
        f"UNIQUE({', '.join(u['column_names'])})"
        for u in inspector.get_unique_constraints(table.name, schema=table.schema)
    ]
    indexes = inspector.get_indexes(table.name, schema=table.schema)
    unique += [f"UNIQUE({', '.join(map(str, i['column_names']))})" for i in indexes if i["unique"]]
    plain = [f"({', '.join(map(str, i['column_names']))})" for i in indexes if not i["unique"]]
    return f"{' '.join(sorted(set(unique)))}, indexes {' '.join(sorted(plain))}"


def sqlite_settings(connection: Any) -> str:
    """The journal mode and synchronous level of a DBAPI SQLite connection."""
    journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
    level = connection.execute("PRAGMA synchronous").fetchone()[0]
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return f"journal_mode={journal}, synchronous={names.get(level, level)}"


def store_settings(store: SQLAlchemyStore) -> str:
    """The same settings, read through one of ``store``'s own connections."""
    connection = store.engine.raw_connection()
    try:
        if store.engine.url.get_backend_name() == "postgresql":
            return postgres_settings(connection.driver_connection)
        return sqlite_settings(connection.driver_connection)
    finally:
        connection.close()


class SqliteExecutemany(RawWriter):
    driver = "sqlite3 executemany"

    def __init__(self, store: SQLAlchemyStore, table: Any) -> None:
        self._engine, self._table = store.engine, table
        self._connection = sqlite3.connect(
            str(store.engine.url.database), isolation_level=None, timeout=30
        )
        self._connection.execute("PRAGMA synchronous=FULL")  # as the store's connections

    def write(self, columns: Sequence[str], rows: Rows) -> float:
        conn = self._connection
        sql = f"INSERT INTO {self._table.name} ({', '.join(columns)}) VALUES "
        sql += f"({', '.join('?' for _ in columns)})"
        start = clock()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        return clock() - start

    def take_all(self, columns: Sequence[str]) -> float:
        conn = self._connection
        sql = f"DELETE FROM {self._table.name} RETURNING {', '.join(columns)}"
        start = clock()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql).fetchall()
        conn.execute("COMMIT")
        return clock() - start

    def count(self) -> int:
        return int(
            self._connection.execute(f"SELECT count(*) FROM {self._table.name}").fetchone()[0]
        )

    def describe(self) -> str:
        return (
            f"{sqlite_settings(self._connection)}, {_indexes(self._engine, self._table)}; "
            "BEGIN IMMEDIATE, executemany of text rows, COMMIT"
        )

    def close(self) -> None:
        self._connection.close()


def postgres_settings(connection: Any) -> str:
    """The settings that decide what a PostgreSQL commit costs, as ``connection`` sees them."""
    names = ("synchronous_commit", "fsync", "wal_level", "commit_delay")
    cursor = connection.cursor()
    values = [cursor.execute(f"SHOW {name}").fetchone()[0] for name in names]
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


class PostgresCopy(RawWriter):
    driver = "psycopg COPY"

    def __init__(self, store: SQLAlchemyStore, table: Any) -> None:
        self._engine, self._table = store.engine, table
        url = store.engine.url.set(drivername="postgresql")
        self._connection = psycopg.connect(url.render_as_string(hide_password=False))
        self._name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'

    def write(self, columns: Sequence[str], rows: Rows) -> float:
        conn = self._connection
        text = copy_text(rows)  # COPY's input, made before the clock
        cursor = conn.cursor()
        sql = f"COPY {self._name} ({', '.join(columns)}) FROM STDIN"
        start = clock()
        with cursor.copy(sql) as copy:
            copy.write(text)
        conn.commit()
        return clock() - start

    def take_all(self, columns: Sequence[str]) -> float:
        conn = self._connection
        cursor = conn.cursor()
        sql = f"DELETE FROM {self._name} RETURNING {', '.join(columns)}"
        start = clock()
        cursor.execute(sql)
        cursor.fetchall()
        conn.commit()
        return clock() - start

    def count(self) -> int:
        row = self._connection.execute(f"SELECT count(*) FROM {self._name}").fetchone()
        self._connection.commit()
        assert row is not None
        return int(row[0])

    def describe(self) -> str:
        settings = postgres_settings(self._connection)
        self._connection.commit()
        return (
            f"{settings}, {_indexes(self._engine, self._table)}; "
            "COPY FROM STDIN of text-format rows, COMMIT"
        )

    def close(self) -> None:
        self._connection.close()
