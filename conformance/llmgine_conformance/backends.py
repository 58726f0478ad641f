"""Built-in backends: where a store lives, how to open it again, how to clean up.

A `Backend` is a *location*: `open` returns a new store on it, so closing one
store and opening another is a restart. Each backend also knows how to plant
a raw row (to test undecodable data) and how to point the environment-driven
seed API at itself.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, Text, cast, create_engine, insert, text, type_coerce
from sqlalchemy.engine import make_url

from llmgine.database.instants import to_utc, utc_now
from llmgine.database.memory import MemoryDatabase, MemoryStore
from llmgine.database.sqlstore import SQLAlchemyStore

POSTGRES_URL_ENV = "LLMGINE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LLMGINE_REQUIRE_POSTGRES"

Clock = Callable[[], datetime]


class Backend(ABC):
    """A place stores can be opened on, repeatedly."""

    name: str

    @abstractmethod
    def open(self, *, clock: Clock = utc_now) -> Any:
        """A new store on this backend's location."""

    @abstractmethod
    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        """Store a scheduled-event row exactly as given, bypassing the codec."""

    def environment(self) -> dict[str, str] | None:
        """``LLMGINE_DB_*`` values that point the seed API here, or None if it cannot."""
        return None

    def close(self) -> None:  # noqa: B027 - most backends have nothing to remove
        """Remove everything this backend created."""


class MemoryBackend(Backend):
    """`MemoryStore` objects sharing one `MemoryDatabase`."""

    name = "memory"

    def __init__(self) -> None:
        self.database = MemoryDatabase()

    def open(self, *, clock: Clock = utc_now) -> MemoryStore:
        return MemoryStore(self.database, clock=clock)

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        self.database.insert_raw(
            event_id=event_id, event_class_name=event_class_name, event_data=event_data, due=due
        )


class SqlBackend(Backend):
    """`SQLAlchemyStore` objects on one database URL and schema (or SQLite prefix)."""

    def __init__(self, name: str, url: str, schema: str) -> None:
        self.name = name
        self.url = url
        self.schema = schema
        self._stores: list[SQLAlchemyStore] = []

    def open(self, *, clock: Clock = utc_now) -> SQLAlchemyStore:
        store = SQLAlchemyStore.from_url(self.url, schema=self.schema, clock=clock)
        self._stores.append(store)
        return store

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        store = self.open()
        store.setup()
        raw: Any = type_coerce(event_data, Text())
        if store.engine.dialect.name == "postgresql":
            raw = cast(raw, JSON)
        now = utc_now()
        with store.engine.begin() as conn:
            conn.execute(
                insert(store.tables.scheduled).values(
                    event_id=event_id,
                    event_class_name=event_class_name,
                    event_data=raw,
                    scheduled_time=to_utc(due),
                    created_at=now,
                )
            )
        store.close()

    def environment(self) -> dict[str, str]:
        return {"LLMGINE_DB_URL": self.url, "LLMGINE_DB_SCHEMA": self.schema}

    def leaked_connections(self) -> int:
        """Connections still checked out of the pools of stores this backend opened."""
        return sum(_checked_out(store.engine) for store in self._stores)

    def close(self) -> None:
        for store in self._stores:
            store.close()
        self._stores.clear()


def _checked_out(engine: Engine) -> int:
    checkedout = getattr(engine.pool, "checkedout", None)
    return int(checkedout()) if callable(checkedout) else 0


def sqlite_backend(directory: Path, *, schema: str = "message_bus") -> SqlBackend:
    """A SQLite file of its own in ``directory``."""
    return SqlBackend(
        "sqlite", f"sqlite:///{directory / f'llmgine-{uuid.uuid4().hex[:8]}.db'}", schema
    )


class PostgresBackend(SqlBackend):
    """A schema of its own in a PostgreSQL database, dropped at close."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        super().__init__("postgres", url, schema or f"llmgine_t_{uuid.uuid4().hex[:12]}")

    def close(self) -> None:
        super().close()
        engine = create_engine(_psycopg(self.url))
        try:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            engine.dispose()


def _psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def postgres_url_from_environment() -> str | None:
    """The PostgreSQL URL the tests should use, from ``LLMGINE_TEST_POSTGRES_URL``."""
    return os.environ.get(POSTGRES_URL_ENV) or None


def postgres_required() -> bool:
    """True when ``LLMGINE_REQUIRE_POSTGRES`` forbids skipping PostgreSQL tests."""
    return os.environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
