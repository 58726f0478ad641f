"""Backends: where stores live, what each can do, and how to clean up after them.

A `Backend` is a *location* plus the operations the suite needs around it:
`open` returns a new store on the location, so closing one store and opening
another is a restart. What else a backend can do is declared in
`capabilities` (the constants below), in the manner of SQLAlchemy's dialect
requirements: a test that needs a capability the backend does not declare is
skipped, with the reason, rather than failed.

Built-in backends: ``memory``, ``sqlite`` (a file per test), ``postgres`` (a
schema per test) and ``faulty-sqlite`` / ``faulty-postgres`` (the reference
store on the fault-injecting engine, see `llmgine_conformance.faults`).
Writing your own: subclass `Backend` (or use `StoreFactoryBackend`) and run
``llmgine-conformance --store your.module:factory``.
"""

from __future__ import annotations

import functools
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import JSON, Engine, Text, cast, create_engine, insert, inspect, text, type_coerce
from sqlalchemy.engine import URL

from llmgine.database.config import normalize_url
from llmgine.database.connect import create_engine_for
from llmgine.database.instants import to_utc, utc_now
from llmgine.database.memory import MemoryDatabase, MemoryStore
from llmgine.database.models import Naming
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.redaction import redact
from llmgine_conformance.faults import FaultInjector

POSTGRES_URL_ENV = "LLMGINE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LLMGINE_REQUIRE_POSTGRES"

Clock = Callable[[], datetime]

# --- capabilities -----------------------------------------------------------------------

RESTART = "restart"
"""Stores opened on one backend see the same rows (close + open is a restart)."""
CLOCK = "clock"
"""`Backend.open` honours its ``clock`` argument, so lease expiry can be tested without sleeping."""
RAW_ROWS = "raw_rows"
"""`Backend.insert_raw` plants rows the codec would never write (undecodable data)."""
EVENT_LOG = "event_log"
"""The stores implement `EventLog` as well as `ScheduledEventStore`."""
ENVIRONMENT = "environment"
"""`Backend.environment` gives ``LLMGINE_DB_*`` values that point the seed API at this backend."""
PROCESSES = "processes"
"""`Backend.process_opener` gives a picklable callable that opens a store in another process."""
NAMESPACES = "namespaces"
"""`Backend.sibling` gives another schema or prefix in the same database."""
SESSION_TIME_ZONE = "session_time_zone"
"""`Backend.with_session_time_zone` reopens this location with a non-UTC database session zone."""
DISCONNECT = "disconnect"
"""`Backend.terminate_connections` kills the server side of every connection its stores hold."""
FAULTS = "faults"
"""`Backend.faults` is a `FaultInjector` attached to every store this backend opens."""
CATALOG = "catalog"
"""`Backend.foreign_objects` lists database objects created outside the configured namespace."""

ALL_CAPABILITIES = frozenset(
    {RESTART, CLOCK, RAW_ROWS, EVENT_LOG, ENVIRONMENT, PROCESSES, NAMESPACES,
     SESSION_TIME_ZONE, DISCONNECT, FAULTS, CATALOG}
)  # fmt: skip


class Backend(ABC):
    """A place stores can be opened on, repeatedly, and what else can be done there."""

    name: str = "backend"
    capabilities: frozenset[str] = frozenset()
    faults: FaultInjector | None = None

    @abstractmethod
    def open(self, *, clock: Clock | None = None) -> Any:
        """A new store (`ScheduledEventStore`, and `EventLog` with EVENT_LOG) on this location.

        ``clock`` replaces the store's clock (CLOCK); None keeps the store's own,
        which for a database server may be the server's clock."""

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        """Store a scheduled-event row exactly as given, bypassing the codec (RAW_ROWS)."""
        raise NotImplementedError(f"{self.name} does not declare {RAW_ROWS}")

    def environment(self) -> dict[str, str]:
        """``LLMGINE_DB_*`` values pointing the environment-driven store here (ENVIRONMENT)."""
        raise NotImplementedError(f"{self.name} does not declare {ENVIRONMENT}")

    def process_opener(self) -> Callable[[], Any]:
        """A picklable callable that opens a store on this location (PROCESSES)."""
        raise NotImplementedError(f"{self.name} does not declare {PROCESSES}")

    def sibling(self) -> Backend:
        """Another namespace in the same database, closed with this one (NAMESPACES)."""
        raise NotImplementedError(f"{self.name} does not declare {NAMESPACES}")

    def with_session_time_zone(self, zone: str) -> Backend:
        """This location, reached with database session time zone ``zone`` (SESSION_TIME_ZONE)."""
        raise NotImplementedError(f"{self.name} does not declare {SESSION_TIME_ZONE}")

    def terminate_connections(self) -> int:
        """Kill the server side of the stores' connections; return how many (DISCONNECT)."""
        raise NotImplementedError(f"{self.name} does not declare {DISCONNECT}")

    def foreign_objects(self) -> list[str]:
        """Objects of llmgine's tables found where a store ignoring its namespace would put
        them (CATALOG): PostgreSQL's search_path schemas, or unprefixed SQLite tables."""
        raise NotImplementedError(f"{self.name} does not declare {CATALOG}")

    def leaked_connections(self) -> int:
        """Pooled connections still checked out by the stores opened here."""
        return 0

    def close(self) -> None:  # noqa: B027 - a backend with nothing to remove keeps this
        """Close every store opened here and remove what this backend created."""


class StoreFactoryBackend(Backend):
    """The shortest way to plug in a store: a function that opens one on a shared location.

    ``open_store(clock)`` must return a store that sees what earlier stores
    from the same function stored (declare RESTART), or a fresh one (don't).
    Every other capability is declared by giving the hook that provides it, named as
    the `Backend` method (or attribute) it becomes:

    ==========================  =====================  =====================================
    hook                        declares               gives
    ==========================  =====================  =====================================
    ``insert_raw``              RAW_ROWS               a function(event_id=, event_class_name=,
                                                       event_data=, due=) storing a row as given
    ``process_opener``          PROCESSES              a picklable zero-argument callable that
                                                       opens a store in another process
    ``environment``             ENVIRONMENT            the ``LLMGINE_DB_*`` values for the seed API
    ``sibling``                 NAMESPACES             a function returning a `Backend` on
                                                       another namespace of the same database
    ``with_session_time_zone``  SESSION_TIME_ZONE      a function(zone) returning a `Backend`
    ``terminate_connections``   DISCONNECT             a function killing the stores'
                                                       connections, returning how many
    ``faults``                  FAULTS                 a `FaultInjector` attached to the engines
    ``foreign_objects``         CATALOG                a function listing llmgine objects
                                                       outside the namespace
    ==========================  =====================  =====================================

    ``cleanup()`` runs at `close`, after the stores are closed. ``capabilities``
    (default RESTART, CLOCK, EVENT_LOG, plus the hooks') replaces the declared set;
    declaring a capability without its hook is a `ValueError`.
    """

    def __init__(
        self,
        open_store: Callable[[Clock], Any],
        *,
        name: str = "custom",
        capabilities: frozenset[str] | None = None,
        insert_raw: Callable[..., None] | None = None,
        process_opener: Callable[[], Any] | None = None,
        environment: dict[str, str] | None = None,
        sibling: Callable[[], Backend] | None = None,
        with_session_time_zone: Callable[[str], Backend] | None = None,
        terminate_connections: Callable[[], int] | None = None,
        faults: FaultInjector | None = None,
        foreign_objects: Callable[[], list[str]] | None = None,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        hooks: dict[str, object] = {
            RAW_ROWS: insert_raw, PROCESSES: process_opener, ENVIRONMENT: environment,
            NAMESPACES: sibling, SESSION_TIME_ZONE: with_session_time_zone,
            DISCONNECT: terminate_connections, FAULTS: faults, CATALOG: foreign_objects,
        }  # fmt: skip
        given = frozenset(capability for capability, hook in hooks.items() if hook is not None)
        declared = frozenset({RESTART, CLOCK, EVENT_LOG}) | given
        declared = declared if capabilities is None else frozenset(capabilities)
        unknown = declared - ALL_CAPABILITIES
        if unknown:
            raise ValueError(f"{name}: unknown capabilities {sorted(unknown)}")
        hookless = sorted(capability for capability in hooks if capability in declared - given)
        if hookless:
            raise ValueError(
                f"{name} declares {', '.join(hookless)} without the hook that provides it "
                "(see StoreFactoryBackend)"
            )
        self._open_store = open_store
        self.name = name
        self.capabilities = declared
        self.faults = faults
        self._insert_raw = insert_raw
        self._process_opener = process_opener
        self._environment = environment
        self._sibling = sibling
        self._with_session_time_zone = with_session_time_zone
        self._terminate_connections = terminate_connections
        self._foreign_objects = foreign_objects
        self._cleanup = cleanup
        self._stores: list[Any] = []

    def open(self, *, clock: Clock | None = None) -> Any:
        store = self._open_store(clock or utc_now)
        self._stores.append(store)
        return store

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        if self._insert_raw is None:
            super().insert_raw(
                event_id=event_id, event_class_name=event_class_name, event_data=event_data, due=due
            )
            return
        self._insert_raw(
            event_id=event_id, event_class_name=event_class_name, event_data=event_data, due=due
        )

    def process_opener(self) -> Callable[[], Any]:
        if self._process_opener is None:
            return super().process_opener()
        return self._process_opener

    def environment(self) -> dict[str, str]:
        if self._environment is None:
            return super().environment()
        return dict(self._environment)

    def sibling(self) -> Backend:
        return super().sibling() if self._sibling is None else self._sibling()

    def with_session_time_zone(self, zone: str) -> Backend:
        if self._with_session_time_zone is None:
            return super().with_session_time_zone(zone)
        return self._with_session_time_zone(zone)

    def terminate_connections(self) -> int:
        if self._terminate_connections is None:
            return super().terminate_connections()
        return self._terminate_connections()

    def foreign_objects(self) -> list[str]:
        if self._foreign_objects is None:
            return super().foreign_objects()
        return self._foreign_objects()

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()
        if self._cleanup is not None:
            self._cleanup()


class MemoryBackend(Backend):
    """`MemoryStore` objects sharing one `MemoryDatabase`."""

    name = "memory"
    capabilities = frozenset({RESTART, CLOCK, RAW_ROWS, EVENT_LOG})

    def __init__(self) -> None:
        self.database = MemoryDatabase()

    def open(self, *, clock: Clock | None = None) -> MemoryStore:
        return MemoryStore(self.database, clock=clock or utc_now)

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        self.database.insert_raw(
            event_id=event_id, event_class_name=event_class_name, event_data=event_data, due=due
        )


def _open_sql_store(url: str, schema: str) -> SQLAlchemyStore:
    return SQLAlchemyStore.from_url(url, schema=schema)


class SqlBackend(Backend):
    """`SQLAlchemyStore` objects on one database URL and one schema (SQLite: table prefix)."""

    capabilities = frozenset(
        {RESTART, CLOCK, RAW_ROWS, EVENT_LOG, ENVIRONMENT, PROCESSES, NAMESPACES, CATALOG}
    )

    def __init__(self, name: str, url: str, schema: str, *, drop_schema: bool = False) -> None:
        self.name = name
        self.url = url
        self.schema = schema
        self._drop_schema = drop_schema
        self._engines: list[Engine] = []
        self._children: list[SqlBackend] = []
        self._application_name = f"llmgine-conformance-{uuid.uuid4().hex[:12]}"

    @property
    def is_postgres(self) -> bool:
        return normalize_url(self.url).get_backend_name() == "postgresql"

    def _engine(self) -> Engine:
        url = normalize_url(self.url)
        if self.is_postgres and "application_name" not in url.query:
            url = url.update_query_dict({"application_name": self._application_name})
        return create_engine_for(url)

    def open(self, *, clock: Clock | None = None) -> SQLAlchemyStore:
        engine = self._engine()
        if self.faults is not None:
            self.faults.attach(engine)
        self._engines.append(engine)  # the backend made the engine, so the backend disposes it
        return SQLAlchemyStore(engine, naming=self.naming, clock=clock)

    @property
    def naming(self) -> Naming:
        from llmgine.database.config import DatabaseConfig

        return DatabaseConfig(db_url=self.url, schema=self.schema, persist_events=False).naming

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        store = SQLAlchemyStore.from_url(self.url, schema=self.schema)
        try:
            store.setup()
            raw: Any = type_coerce(event_data, Text())
            if self.is_postgres:
                raw = cast(raw, JSON)
            row = {
                "event_id": event_id,
                "event_class_name": event_class_name,
                "event_data": raw,
                "scheduled_time": to_utc(due),
                "created_at": utc_now(),
            }
            with store.engine.begin() as conn:
                conn.execute(insert(store.tables.scheduled).values(**row))
        finally:
            store.close()

    def environment(self) -> dict[str, str]:
        return {"LLMGINE_DB_URL": self.url, "LLMGINE_DB_SCHEMA": self.schema}

    def process_opener(self) -> Callable[[], SQLAlchemyStore]:
        return functools.partial(_open_sql_store, self.url, self.schema)

    def sibling(self) -> SqlBackend:
        child = type(self).__new__(type(self))
        SqlBackend.__init__(
            child,
            self.name,
            self.url,
            f"{self.schema}_sib{uuid.uuid4().hex[:6]}",
            drop_schema=self._drop_schema,
        )
        self._children.append(child)
        return child

    def with_session_time_zone(self, zone: str) -> SqlBackend:
        if not self.is_postgres:
            raise NotImplementedError(f"{self.name} does not declare {SESSION_TIME_ZONE}")
        separator = "&" if "?" in self.url else "?"
        url = f"{self.url}{separator}options={quote(f'-c timezone={zone}')}"
        child = SqlBackend(self.name, url, self.schema)
        self._children.append(child)
        return child

    def terminate_connections(self) -> int:
        if not self.is_postgres:
            raise NotImplementedError(f"{self.name} does not declare {DISCONNECT}")
        engine = create_engine(_driver_url(self.url))
        try:
            with engine.begin() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self._application_name},
                ).scalar_one()
        finally:
            engine.dispose()
        return int(killed)

    def foreign_objects(self) -> list[str]:
        engine = create_engine(_driver_url(self.url))
        try:
            if self.is_postgres:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            # where a store that ignored its schema would put its objects
                            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = ANY(current_schemas(false)) "
                            "AND n.nspname <> :schema AND (c.relname LIKE '%scheduled_events%' "
                            "OR c.relname LIKE '%event_log%' OR c.relname LIKE '%llmgine_meta%')"
                        ),
                        {"schema": self.schema},
                    ).scalars()
                    return sorted(rows)
            prefix = self.naming.prefix
            names = inspect(engine).get_table_names()
            ours = ("scheduled_events", "event_log", "llmgine_meta")
            return sorted(n for n in names if n.endswith(ours) and not n.startswith(prefix))
        finally:
            engine.dispose()

    def leaked_connections(self) -> int:
        return sum(_checked_out(engine) for engine in self._engines)

    def close(self) -> None:
        for child in self._children:
            child.close()
        self._children.clear()
        for engine in self._engines:
            engine.dispose()
        self._engines.clear()
        self._remove()

    def _remove(self) -> None:
        engine = create_engine(_driver_url(self.url))
        try:
            if self.is_postgres:
                if self._drop_schema:
                    with engine.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                store = SQLAlchemyStore(engine, naming=self.naming)
                store.drop()
        finally:
            engine.dispose()


def _checked_out(engine: Engine) -> int:
    checkedout = getattr(engine.pool, "checkedout", None)
    return int(checkedout()) if callable(checkedout) else 0


def _driver_url(url: str) -> URL:
    return normalize_url(url)


# --- the built-in backends ---------------------------------------------------------------


def sqlite_backend(directory: Path, *, schema: str = "message_bus") -> SqlBackend:
    """A SQLite file of its own in ``directory``."""
    path = directory / f"llmgine-{uuid.uuid4().hex[:8]}.db"
    return SqlBackend("sqlite", f"sqlite:///{path}", schema)


def postgres_backend(url: str, *, name: str = "postgres") -> SqlBackend:
    """A schema of its own in the PostgreSQL database at ``url``, dropped at close."""
    backend = SqlBackend(name, url, f"llmgine_t_{uuid.uuid4().hex[:12]}", drop_schema=True)
    backend.capabilities = backend.capabilities | {SESSION_TIME_ZONE, DISCONNECT}
    return backend


def url_backend(url: str) -> SqlBackend:
    """The reference store on any database URL, in a namespace of its own removed at close."""
    suffix = uuid.uuid4().hex[:12]
    if normalize_url(url).get_backend_name() == "postgresql":
        return postgres_backend(url, name="url")
    return SqlBackend("url", url, f"llmgine_t_{suffix}")


def faulty(backend: SqlBackend, *, seed: int = 0) -> SqlBackend:
    """``backend`` with a `FaultInjector` attached to every engine its stores use."""
    backend.name = f"faulty-{backend.name}"
    backend.faults = FaultInjector(seed=seed)
    # A store opened in another process would not carry this process's injector.
    backend.capabilities = (backend.capabilities | {FAULTS}) - {PROCESSES}
    return backend


# --- PostgreSQL for the tests ------------------------------------------------------------


def postgres_url_from_environment() -> str | None:
    """The PostgreSQL URL the tests should use, from ``LLMGINE_TEST_POSTGRES_URL``."""
    return os.environ.get(POSTGRES_URL_ENV) or None


def postgres_required() -> bool:
    """True when ``LLMGINE_REQUIRE_POSTGRES`` forbids skipping PostgreSQL tests."""
    return os.environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def redacted(url: str) -> str:
    """``url`` with its password hidden (`llmgine.redaction.redact`)."""
    return redact(url)
