"""The event log's hot path on SQLite: one JSON array per batch, and where it steps aside."""

from __future__ import annotations

from typing import Any

import pytest

from llmgine.database._driver_rows import JsonArrayInsert
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages import Event
from llmgine.messages.events import SessionID
from llmgine_conformance.backends import SqlBackend


@pytest.fixture
def store(sqlite_db: SqlBackend) -> SQLAlchemyStore:
    return sqlite_db.open()


def json_insert(store: SQLAlchemyStore) -> JsonArrayInsert:
    insert: Any = store._log_insert  # the hot path is what these tests are about
    assert isinstance(insert, JsonArrayInsert)
    return insert


def test_text_with_nul_comes_back_whole(store: SQLAlchemyStore) -> None:
    """json_extract would cut text at NUL: such a batch takes the driver's executemany."""
    events = [
        Event(event_id=f"id\x00{i}", session_id=SessionID(f"s\x00{i}"), metadata={"n": "a\x00b"})
        for i in range(50)
    ]
    store.append(events)
    entries = store.read()
    assert [e.event_id for e in entries] == [e.event_id for e in events]
    assert [e.session_id for e in entries] == [e.session_id for e in events]
    assert {e.data["metadata"]["n"] for e in entries} == {"a\x00b"}


def test_a_payload_spelling_out_backslash_u0000_stays_on_the_fast_path(
    store: SQLAlchemyStore,
) -> None:
    events = [Event(metadata={"text": "\\u0000 and \\\\u0000"}) for _ in range(3)]
    insert = json_insert(store)
    assert insert._array([("\\u0000",)]) is not None
    assert insert._array([("\x00",)]) is None
    store.append(events)
    assert {e.data["metadata"]["text"] for e in store.read()} == {"\\u0000 and \\\\u0000"}


def test_a_sqlite_without_json_each_falls_back_to_executemany(store: SQLAlchemyStore) -> None:
    insert = json_insert(store)
    insert.sql = insert.sql.replace("json_each(", "json_each_missing(")
    first, second = [Event() for _ in range(3)], [Event() for _ in range(2)]
    store.append(first)
    store.append(second + first[:1])
    assert [e.event_id for e in store.read()] == [e.event_id for e in first + second]
    assert insert._supported is False


def test_duplicates_inside_one_batch_are_written_once(store: SQLAlchemyStore) -> None:
    event = Event()
    store.append([event, Event(event_id=event.event_id), event])
    assert [e.event_id for e in store.read()] == [event.event_id]
