"""DatabaseEngine: the environment-driven holder behind the seed API."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from llmgine.database import (
    DatabaseEngine,
    drop_all,
    get_and_delete_unfinished_events,
    persist_event,
    reset_engine,
    save_unfinished_events,
)
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.errors import ConfigurationError, SchemaVersionError
from llmgine.messages import Event, ScheduledEvent
from llmgine_conformance.backends import SqlBackend


def future_event() -> ScheduledEvent:
    return ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))


def test_config_change_disposes_the_old_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = DatabaseEngine.get_engine()
    with old.connect():
        pass
    assert old.pool.checkedin() == 1  # type: ignore[attr-defined]
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{tmp_path / 'new.db'}")
    new = DatabaseEngine.get_engine()
    assert new is not old
    assert DatabaseEngine.flush(5)  # the old engine is released in the background
    assert old.pool.checkedin() == 0  # type: ignore[attr-defined]


def test_a_config_change_does_not_wait_for_the_old_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call that notices a change, perhaps on the event loop, must not do the old I/O."""
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    missing = tmp_path / "gone"
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{missing / 'x.db'}")  # cannot be opened
    persist_event(Event())  # the old writer now retries against a database that is not there
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{tmp_path / 'ok.db'}")
    started = time.monotonic()
    persist_event(Event())
    assert time.monotonic() - started < 1.0  # the old writer flushes for up to 5 s elsewhere


def test_concurrent_first_use_builds_one_store() -> None:
    stores: list[SQLAlchemyStore] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        stores.append(DatabaseEngine.get_store())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(store) for store in stores}) == 1


def test_get_session_queries_the_configured_tables() -> None:
    save_unfinished_events([future_event()])
    store = DatabaseEngine.get_store()
    with DatabaseEngine.get_session() as session:
        assert len(session.execute(select(store.tables.scheduled)).all()) == 1


def test_sqlite_tables_carry_the_schema_as_prefix() -> None:
    names = set(inspect(DatabaseEngine.get_engine()).get_table_names())
    assert {
        "message_bus_scheduled_events",
        "message_bus_event_log",
        "message_bus_llmgine_meta",
    } <= names


def test_drop_all_after_reset_drops_the_tables() -> None:
    save_unfinished_events([future_event()])
    reset_engine()
    drop_all()
    assert inspect(DatabaseEngine.get_store().engine).get_table_names() == []
    assert get_and_delete_unfinished_events() == []


def test_invalid_environment_raises_from_get_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_SCHEMA", "bad name")
    with pytest.raises(ConfigurationError):
        DatabaseEngine.get_config()
    with pytest.raises(ConfigurationError):
        DatabaseEngine.get_engine()


def test_newer_schema_version_is_an_error_not_a_wipe(sql_backend: SqlBackend) -> None:
    store = sql_backend.open()
    store.add([future_event()])
    meta = store.tables.meta
    with store.engine.begin() as conn:
        conn.execute(meta.update().values(value="999"))
    newcomer = sql_backend.open()
    with pytest.raises(SchemaVersionError, match="schema_version 999"):
        newcomer.take_all()
    with store.engine.begin() as conn:
        conn.execute(meta.update().values(value="1"))
    assert len(sql_backend.open().take_all()) == 1


def test_a_row_put_back_by_take_all_keeps_every_column(sql_backend: SqlBackend) -> None:
    """take_all deletes and returns rows in one pass; one that does not decode goes back as
    it was (its raw due and creation instants too), with its reason."""
    store = sql_backend.open()
    sql_backend.insert_raw(
        event_id="undecodable", event_class_name="NoSuchClass", event_data="{}", due=datetime.now()
    )
    t = store.tables.scheduled
    columns = (t.c.id, t.c.event_id, t.c.scheduled_time, t.c.created_at)
    with store.engine.connect() as conn:
        before = conn.execute(select(*columns)).one()
    assert store.take_all() == []
    with store.engine.connect() as conn:
        after = conn.execute(select(*columns, t.c.quarantine_reason)).one()
    assert tuple(after[:4]) == tuple(before)
    assert "NoSuchClass" in after.quarantine_reason
