"""Engines with llmgine's settings for each backend.

SQLite: WAL journal, ``synchronous=FULL`` (a commit survives a crash of the
process and of the machine), a 30 s busy timeout, and every transaction begun
with ``BEGIN IMMEDIATE`` so that read-then-write transactions never fail to
upgrade their lock. In-memory databases share one connection across threads.
PostgreSQL: psycopg 3, pre-ping, a 10 s connect timeout unless the URL sets one.
Both: the pool of `PoolSettings` (small by default: one bus needs few connections).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import NullPool, StaticPool

from llmgine.database import codec
from llmgine.database.config import PoolSettings
from llmgine.errors import ConfigurationError
from llmgine.redaction import redact

SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 10


def is_memory_sqlite(url: URL) -> bool:
    """True for SQLite URLs that name an in-memory database."""
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def create_engine_for(url: URL, *, pool: PoolSettings | None = None, **overrides: Any) -> Engine:
    """A new engine for ``url`` with the ``pool`` settings (default: `PoolSettings()`);
    raises `ConfigurationError` for an unknown driver."""
    backend = url.get_backend_name()
    options: dict[str, Any] = {
        "pool_pre_ping": backend != "sqlite",  # a SQLite file cannot drop its connection
        "json_serializer": codec.dumps,
        "json_deserializer": codec.loads,
    }
    if backend == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    elif backend == "postgresql" and "connect_timeout" not in url.query:
        options["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    if is_memory_sqlite(url):
        options["poolclass"] = StaticPool  # one shared connection is the database
    else:
        options.update(_pool_options(pool or PoolSettings()))
    options.update(overrides)
    try:
        engine = create_engine(url, **options)
    except NoSuchModuleError:
        raise ConfigurationError(
            f"unknown database driver {url.drivername!r} in {redact(url)!r}"
        ) from None
    except ImportError as exc:
        hint = " (pip install 'llmgine[postgres]')" if backend == "postgresql" else ""
        raise ConfigurationError(
            f"the driver for {url.drivername!r} is not installed: {exc}{hint}"
        ) from None
    if backend == "sqlite":
        _configure_sqlite(engine, wal=not is_memory_sqlite(url))
    return engine


def _pool_options(pool: PoolSettings) -> dict[str, Any]:
    if pool.size == 0:
        return {"poolclass": NullPool}
    return {"pool_size": pool.size, "max_overflow": pool.max_overflow, "pool_timeout": pool.timeout}


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL, which then persists in it. Only the first connections of a new
    file switch; SQLite answers a switch that meets a lock with "database is locked" at once,
    without its busy timeout, so such a switch is retried for a while."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
