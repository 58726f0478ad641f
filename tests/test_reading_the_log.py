"""Reading the event log back: `SQLAlchemyStore.from_environment()` is the store the
environment configures (the one the bus logs to), and a call that only reads creates nothing:
no SQLite file, no schema, no table."""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from llmgine.bus.bus import MessageBus
from llmgine.database import DatabaseEngine, persist_event
from llmgine.database.cli import main as llmgine_db
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages import Event
from llmgine_conformance.backends import SqlBackend


async def test_the_environments_store_reads_what_the_bus_logged(
    sql_backend: SqlBackend,
    use_backend: Callable[[SqlBackend], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_backend(sql_backend)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    event = Event(session_id="s1")
    bus = MessageBus()
    await bus.start()
    await bus.publish(event)
    await bus.stop()
    assert DatabaseEngine.flush(10)
    store = SQLAlchemyStore.from_environment()
    try:
        assert [entry.event_id for entry in store.read(session_id="s1")] == [event.event_id]
    finally:
        store.close()


def test_from_url_defaults_to_the_environments_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"  # what the isolated environment names
    event = Event()
    logged = SQLAlchemyStore.from_environment(environ={"LLMGINE_DB_URL": url})
    logged.append([event])
    logged.close()
    store = SQLAlchemyStore.from_url(url)
    try:
        assert [entry.event_id for entry in store.read()] == [event.event_id]
    finally:
        store.close()


def test_the_module_functions_log_where_from_environment_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    event = Event()
    persist_event(event)
    assert DatabaseEngine.flush(10)
    store = SQLAlchemyStore.from_environment()
    try:
        assert [entry.event_id for entry in store.read()] == [event.event_id]
    finally:
        store.close()


def read_only_calls(store: SQLAlchemyStore) -> tuple[object, ...]:
    return store.read(), store.read(session_id="x", limit=5), store.quarantined(), store.next_due()


def test_reading_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    store = SQLAlchemyStore.from_url(f"sqlite:///{path}")
    try:
        assert read_only_calls(store) == ([], [], [], None)
        store.now()
    finally:
        store.close()
    assert not path.exists()


def test_reading_a_database_without_the_tables_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE app_data (x INTEGER)")
    conn.close()
    store = SQLAlchemyStore.from_url(f"sqlite:///{path}")
    try:
        assert read_only_calls(store) == ([], [], [], None)
    finally:
        store.close()
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert inspect(engine).get_table_names() == ["app_data"]
    finally:
        engine.dispose()


def test_reading_a_missing_postgres_schema_creates_none(postgres_url: str) -> None:
    schema = f"llmgine_never_{uuid.uuid4().hex[:8]}"
    store = SQLAlchemyStore.from_url(postgres_url, schema=schema)
    try:
        assert read_only_calls(store) == ([], [], [], None)
        store.now()
    finally:
        store.close()
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            found = conn.scalar(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}
            )
        assert found == 0
    finally:
        engine.dispose()


def test_llmgine_db_check_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fresh.db"
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{path}")
    out = io.StringIO()
    assert llmgine_db(["check"], out=out) == 0
    assert "no tables yet" in out.getvalue()
    assert not path.exists()
    assert llmgine_db(["quarantined"], out=io.StringIO()) == 0
    assert not path.exists()
