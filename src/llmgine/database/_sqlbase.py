"""The SQL store's groundwork: what the dialect can do, the tables' lifecycle, transactions.

`SqlBase` is what `SQLAlchemyStore`'s two halves share: the engine and the
tables named for the configuration, their creation on first use (and again
after they vanish) with the ``schema_version`` check, one transaction per
operation, and the one place driver errors are translated.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Insert, func, insert, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateSchema

from llmgine.database._driver_rows import DriverInsert, driver_instant
from llmgine.database._upgrade import original_tables, upgrade_original_tables
from llmgine.database.instants import utc_now
from llmgine.database.models import SCHEMA_VERSION, Naming, Tables, tables_for
from llmgine.errors import (
    RejectedDataError,
    SchemaVersionError,
    StoreUnavailableError,
    refusal,
)

logger = logging.getLogger(__name__)

CHUNK = 500
"""Ids per statement when a statement lists ids, well under every driver's parameter limit."""


@dataclass(frozen=True)
class Capabilities:
    """What the dialect can do, decided once per store."""

    schemas: bool
    skip_locked: bool
    returning: bool
    on_conflict: Callable[[Any], Insert] | None
    advisory_lock: bool
    instant: Callable[[datetime], Any] | None
    """How the driver takes an instant, when known (the fast insert path needs it)."""
    copy: bool
    """PostgreSQL through psycopg: large event-log batches go in with COPY."""
    json_array: bool
    """SQLite: an event-log batch goes in as one statement from a JSON array."""
    server_clock: bool
    """PostgreSQL: leases are measured on the server's clock (``statement_timestamp()``)."""

    @classmethod
    def of(cls, engine: Engine) -> Capabilities:
        dialect = engine.dialect
        on_conflict: Callable[[Any], Insert] | None = None
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            on_conflict = lambda table: pg_insert(table).on_conflict_do_nothing(  # noqa: E731
                index_elements=[table.c.event_id]
            )
        elif dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            on_conflict = lambda table: sqlite_insert(table).on_conflict_do_nothing(  # noqa: E731
                index_elements=[table.c.event_id]
            )
        return cls(
            schemas=dialect.name == "postgresql",
            skip_locked=dialect.name == "postgresql",
            returning=bool(dialect.update_returning and dialect.delete_returning),
            on_conflict=on_conflict,
            advisory_lock=dialect.name == "postgresql",
            instant=driver_instant(dialect),
            copy=dialect.name == "postgresql" and dialect.driver == "psycopg",
            json_array=dialect.name == "sqlite",
            server_clock=dialect.name == "postgresql",
        )


class SqlBase:
    """Engine, tables, lifecycle and transactions of a SQL store (see `SQLAlchemyStore`)."""

    def __init__(
        self,
        engine: Engine,
        *,
        naming: Naming | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._naming = naming or Naming()
        self._tables = tables_for(self._naming)
        self._caps = Capabilities.of(engine)
        self._clock = clock or utc_now
        self._server_clock = clock is None and self._caps.server_clock
        """Leases on the database server's clock: no clock given and the server has one.
        SQLite runs in this process, on the host's clock. A given clock (tests) wins."""
        self._owns_engine = False
        self._ready = False
        self._setup_lock = threading.Lock()
        self._where = engine.url.render_as_string(hide_password=True)
        self._file = sqlite_file(engine)
        """The SQLite database file, whose identity is checked before each commit."""
        self._file_id: tuple[int, int] | None = None
        self._prepare()

    def _prepare(self) -> None:
        """Build what the store reuses for every call (each half extends this)."""

    def _driver_insert(self, table: Any, columns: tuple[str, ...]) -> DriverInsert | None:
        """The precompiled driver-level insert, where this dialect supports one."""
        if self._caps.on_conflict is None or self._caps.instant is None:
            return None
        return DriverInsert(self._caps.on_conflict(table), columns, self._engine.dialect)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def tables(self) -> Tables:
        """The tables this store uses, named for its schema or prefix."""
        return self._tables

    @property
    def naming(self) -> Naming:
        return self._naming

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    # --- schema and transactions -------------------------------------------------------

    def setup(self) -> None:
        """Create the schema and tables if missing and check ``schema_version``."""
        with self._setup_lock:
            if self._ready:
                return
            with self._errors("setup"), self._engine.begin() as conn:
                self._create(conn)
            if self._file is not None:
                self._file_id = file_identity(self._file)
            self._ready = True

    def _create(self, conn: Connection) -> None:
        schema = self._naming.schema
        if self._caps.advisory_lock:
            key = zlib.crc32(f"llmgine:{schema}:{self._naming.prefix}".encode()) & 0x7FFFFFFF
            conn.execute(select(func.pg_advisory_xact_lock(key)))
        if schema and self._caps.schemas:
            conn.execute(CreateSchema(schema, if_not_exists=True))
        original = original_tables(conn, self._tables)  # left by the original module
        self._tables.metadata.create_all(conn, checkfirst=True)
        meta = self._tables.meta
        found = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
        if found is None:
            upgrade_original_tables(conn, self._tables, original)
            conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(found) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the tables at {self._where} have schema_version {found}, newer than "
                f"{SCHEMA_VERSION} which this llmgine knows; upgrade llmgine to use them"
            )

    def drop(self) -> None:
        """Drop this store's tables (not the schema). For tests and tear-down."""
        with self._setup_lock, self._errors("drop"), self._engine.begin() as conn:
            self._tables.metadata.drop_all(conn, checkfirst=True)
            self._ready = False

    @contextmanager
    def _begin(self, operation: str) -> Iterator[Connection]:
        if not self._ready:
            self.setup()
        with self._errors(operation), self._engine.begin() as conn:
            yield conn
            if self._file is not None and file_identity(self._file) != self._file_id:
                raise self._file_lost(operation)  # before the commit: it rolls back

    def tables_present(self) -> bool:
        """Whether this store's tables exist, found without creating anything (not even the
        SQLite file); a fault raises `StoreUnavailableError`. Tables left by the original
        module (no meta table yet) count: reading them upgrades them first."""
        if self._ready:
            return True
        if self._file is not None and not os.path.exists(self._file):
            return False
        with self._errors("inspect"), self._engine.connect() as conn:
            found = inspect(conn)
            return any(
                found.has_table(table.name, schema=table.schema)
                for table in (self._tables.scheduled, self._tables.log)
            )

    @contextmanager
    def _reading(self, operation: str) -> Iterator[Connection | None]:
        """A transaction for a call that only reads: None, and nothing created, while the
        tables do not exist (the caller answers "nothing"); else as `_begin`."""
        if not self._ready and not self.tables_present():
            yield None
            return
        with self._begin(operation) as conn:
            yield conn

    def _file_lost(self, operation: str) -> StoreUnavailableError:
        """The SQLite file was deleted or replaced under this store: its connections write
        to a file no one will open again. Drop them; the next call creates the file anew."""
        found = "was replaced" if os.path.exists(self._file or "") else "was deleted"
        logger.error(
            "the SQLite file of %s %s while in use: whatever it held is gone with it; "
            "%s not committed, the file is created again for the next write",
            self._where,
            found,
            operation,
        )
        self._ready = False
        self._engine.dispose()  # its connections hold the old file open
        return StoreUnavailableError(f"{operation} on {self._where}: the database file {found}")

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate driver errors, in the one place they are translated."""
        try:
            yield
        except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
            raise RejectedDataError(
                f"{operation} on {self._where} rejected: {first_line(exc.orig)}"
            ) from exc
        except sa_exc.StatementError as exc:
            data = exc.orig is not None and refusal(exc.orig) is not None
            if data and not isinstance(exc, sa_exc.DBAPIError):
                raise RejectedDataError(  # a value the driver could not convert
                    f"{operation} on {self._where} rejected: {first_line(exc.orig)}"
                ) from exc
            raise self._unavailable(operation, exc) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise self._unavailable(operation, exc) from exc

    def _unavailable(self, operation: str, exc: sa_exc.SQLAlchemyError) -> StoreUnavailableError:
        if missing_table(exc):
            self._ready = False
        detail = first_line(getattr(exc, "orig", None) or exc)
        return StoreUnavailableError(
            f"{operation} on {self._where} failed: {type(exc).__name__}: {detail}"
        )

    def _insert_ignoring_duplicates(
        self, conn: Connection, table: Any, rows: list[dict[str, Any]]
    ) -> None:
        if self._caps.on_conflict is not None:
            conn.execute(self._caps.on_conflict(table), rows)
            return
        ids = [row["event_id"] for row in rows]
        present: set[str] = set()
        for chunk in chunks(ids):
            present.update(
                conn.scalars(select(table.c.event_id).where(table.c.event_id.in_(chunk)))
            )
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["event_id"] not in present:
                fresh.setdefault(row["event_id"], row)
        if fresh:
            conn.execute(insert(table), list(fresh.values()))


def sqlite_file(engine: Engine) -> str | None:
    """The absolute path of the engine's SQLite file; None for another database, an
    in-memory one, or a ``file:`` URI (whose path SQLite itself interprets)."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        return None
    return os.path.abspath(database)


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None if there is none. One stat call."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def qualified_table(engine: Engine, table: Any) -> str:
    """The table's name as SQL, quoted by the dialect and schema-qualified if it has a schema."""
    quote = engine.dialect.identifier_preparer.quote
    return f"{quote(table.schema)}.{quote(table.name)}" if table.schema else quote(table.name)


def chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def missing_table(exc: sa_exc.SQLAlchemyError) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in text or "does not exist" in text or "undefinedtable" in text
