"""A database the original llmgine module left behind is upgraded in place and every
pending event delivered: none wiped, none quarantined for its format. The fixture is
built by `tests/original_format.py` from the original's documented format, in a local
zone other than UTC so that naive local instants are told apart from UTC ones."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select

from llmgine.bus import MessageBus
from llmgine.database.config import normalize_url
from llmgine.database.instants import to_utc
from llmgine.messages import ScheduledEvent
from llmgine_conformance.backends import SqlBackend
from original_format import OriginalEvent, build, sample_events

UseBackend = Callable[[SqlBackend], None]


@pytest.fixture(autouse=True)
def local_zone() -> Iterator[None]:
    """A local zone five hours from UTC, as the original's naive values were written in."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def columns(backend: SqlBackend, table: str) -> set[str]:
    engine = create_engine(normalize_url(backend.url))
    try:
        naming = backend.naming
        found = inspect(engine).get_columns(naming.prefix + table, schema=naming.schema)
        return {c["name"] for c in found}
    finally:
        engine.dispose()


async def test_the_bus_delivers_every_event_of_an_original_database(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    planted = sample_events()
    build(sql_backend.url, sql_backend.schema, planted)
    use_backend(sql_backend)
    delivered: list[ScheduledEvent] = []
    bus = MessageBus()
    bus.register_event_handler(ScheduledEvent, delivered.append)
    await bus.start()
    try:
        for _ in range(100):
            if len(delivered) == len(planted):
                break
            await asyncio.sleep(0.1)
    finally:
        await bus.stop()
    assert sorted(e.event_id for e in delivered) == sorted(e.event_id for e in planted)
    due = {e.event_id: e.scheduled_time for e in planted}
    assert all(e.scheduled_time == due[e.event_id] for e in delivered)
    assert sql_backend.open().quarantined() == []


def test_the_upgrade_keeps_each_due_instant(sql_backend: SqlBackend) -> None:
    soon = datetime.now() + timedelta(hours=2)
    planted = [
        OriginalEvent(scheduled_time=soon + timedelta(minutes=1), event_id="second"),
        OriginalEvent(scheduled_time=soon, event_id="first"),
    ]
    build(sql_backend.url, sql_backend.schema, planted)
    store = sql_backend.open()
    assert store.next_due() == to_utc(soon)
    lease, just_before = timedelta(minutes=1), to_utc(soon) - timedelta(milliseconds=1)
    assert store.claim("o", due_before=just_before, lease=lease, limit=9) == []
    taken = store.claim("o", due_before=to_utc(soon), lease=lease, limit=9)
    assert [e.event_id for e in taken] == ["first"]


def test_the_upgrade_adds_the_columns_and_records_the_version(sql_backend: SqlBackend) -> None:
    build(sql_backend.url, sql_backend.schema, sample_events())
    sql_backend.open().setup()
    assert {"owner", "lease_until", "quarantine_reason"} <= columns(sql_backend, "scheduled_events")
    assert "schema_version" in {row.key for row in _meta_rows(sql_backend)}


def test_the_original_event_log_is_read_with_its_instants(sql_backend: SqlBackend) -> None:
    logged = sample_events()[:2]
    build(sql_backend.url, sql_backend.schema, [], logged)
    entries = sql_backend.open().read()
    assert [e.event_id for e in entries] == [e.event_id for e in logged]
    assert [e.timestamp for e in entries] == [
        to_utc(datetime.fromisoformat(e.timestamp)) for e in logged
    ]


def test_a_repeated_event_id_keeps_the_earliest_row(sql_backend: SqlBackend) -> None:
    later = datetime.now() + timedelta(hours=1)
    planted = [
        OriginalEvent(scheduled_time=later, event_id="twice", session_id="kept"),
        OriginalEvent(scheduled_time=later, event_id="twice", session_id="dropped"),
    ]
    build(sql_backend.url, sql_backend.schema, planted)
    store = sql_backend.open()
    [event] = store.take_all()
    assert event.session_id == "kept"
    store.add([event])
    store.add([event])  # idempotent by event_id from now on
    assert len(store.take_all()) == 1


def _meta_rows(backend: SqlBackend) -> list[Any]:
    store = backend.open()
    with store.engine.connect() as conn:
        return list(conn.execute(select(store.tables.meta)).all())
