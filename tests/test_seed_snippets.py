"""The original report's three usage snippets, run as written, doing what the report says."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from llmgine.bus.bus import MessageBus
from llmgine.database import (
    DatabaseEngine,
    get_and_delete_unfinished_events,
    save_unfinished_events,
)
from llmgine.messages.scheduled_events import ScheduledEvent


async def test_basic_sqlite_setup_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMGINE_DB_URL")  # zero configuration: the default ./message_bus.db
    future_time = datetime.now() + timedelta(seconds=0.5)
    delivered: list[ScheduledEvent] = []

    # --- the report's "Basic Setup (SQLite - Zero Configuration)", unchanged ---
    # Works out of the box - creates message_bus.db
    bus = MessageBus()
    await bus.start()

    # Scheduled events automatically persist
    event = ScheduledEvent(scheduled_time=future_time)
    await bus.publish(event)
    await bus.stop()  # Events saved automatically

    # On restart, events are restored
    new_bus = MessageBus()
    new_bus.register_event_handler(ScheduledEvent, delivered.append)  # (added: observe delivery)
    await new_bus.start()  # Loads persisted events
    # --- end of snippet ---

    assert (tmp_path / "message_bus.db").exists()
    await asyncio.sleep(1.0)
    await new_bus.stop()
    assert delivered == [event]


async def test_production_postgres_setup_logs_events_in_its_schema(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LLMGINE_DB_URL", "LLMGINE_DB_SCHEMA", "LLMGINE_PERSIST_EVENTS"):
        monkeypatch.setenv(
            name, os.environ.get(name, "")
        )  # let monkeypatch restore them afterwards
    schema = f"llmgine_production_{os.getpid()}"
    try:
        # --- the report's "Production Setup (PostgreSQL + Event Logging)", names aside ---
        # Configure production database
        os.environ["LLMGINE_DB_URL"] = postgres_url
        os.environ["LLMGINE_DB_SCHEMA"] = schema
        os.environ["LLMGINE_PERSIST_EVENTS"] = "1"  # Enable event logging

        bus = MessageBus()
        await bus.start()
        # All events now logged to production.llmgine_production.event_log
        # --- end of snippet ---
        scheduled = ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))
        await bus.publish(scheduled)
        await bus.stop()

        engine = create_engine(DatabaseEngine.get_config().url)
        try:
            tables = set(inspect(engine).get_table_names(schema=schema))
            assert {"scheduled_events", "event_log", "llmgine_meta"} <= tables
            with engine.connect() as conn:
                logged = conn.scalars(text(f'SELECT event_id FROM "{schema}".event_log')).all()
                waiting = conn.scalars(
                    text(f'SELECT event_id FROM "{schema}".scheduled_events')
                ).all()
            assert scheduled.event_id in logged
            assert waiting == [scheduled.event_id]
        finally:
            engine.dispose()
    finally:
        DatabaseEngine.reset_engine()
        engine = create_engine(DatabaseEngine.get_config().url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def test_testing_setup_gives_a_clean_slate() -> None:
    save_unfinished_events([ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))])

    # --- the report's "Testing Setup", unchanged ---
    from llmgine.database import drop_all, reset_engine

    # Reset database state for testing
    reset_engine()
    drop_all()  # Clean slate for tests
    # --- end of snippet ---

    assert get_and_delete_unfinished_events() == []
