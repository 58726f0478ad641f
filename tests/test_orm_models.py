"""The exported ORM models work through `DatabaseEngine.get_session()`, as in the original.

A session from ``get_session`` reads and writes the configured tables (the
``LLMGINE_DB_SCHEMA`` schema on PostgreSQL, its table prefix on SQLite) through
`ScheduledEventRecord` and `EventRecord`, and follows a configuration change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from llmgine.database import (
    DatabaseEngine,
    get_and_delete_unfinished_events,
    reset_engine,
    save_unfinished_events,
)
from llmgine.database.database import EventRecord, ScheduledEventRecord
from llmgine.messages import ScheduledEvent
from llmgine_conformance.backends import SqlBackend, sqlite_backend

UseBackend = Callable[[SqlBackend], None]


def future_event() -> ScheduledEvent:
    return ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))


def test_session_reads_what_the_store_wrote(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    use_backend(sql_backend)
    event = future_event()
    save_unfinished_events([event])
    with DatabaseEngine.get_session() as session:
        records = session.query(ScheduledEventRecord).all()
    assert [r.event_id for r in records] == [event.event_id]
    assert records[0].event_class_name == "ScheduledEvent"


def test_session_writes_what_the_store_restores(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    use_backend(sql_backend)
    event = future_event()
    save_unfinished_events([event])
    with DatabaseEngine.get_session() as session:
        record = session.scalars(select(ScheduledEventRecord)).one()
        data, due = record.event_data, record.scheduled_time
        session.delete(record)
        session.commit()
        assert get_and_delete_unfinished_events() == []
        session.add(
            ScheduledEventRecord(
                event_id=event.event_id,
                event_class_name="ScheduledEvent",
                event_data=data,
                scheduled_time=due,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    assert get_and_delete_unfinished_events() == [event]


def test_session_reads_the_event_log(sql_backend: SqlBackend, use_backend: UseBackend) -> None:
    use_backend(sql_backend)
    store = sql_backend.open()
    event = future_event()
    store.append([event])
    with DatabaseEngine.get_session() as session:
        logged = session.scalars(select(EventRecord.event_id)).all()
    assert logged == [event.event_id]


def test_session_follows_a_configuration_change(
    sql_backend: SqlBackend, use_backend: UseBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(sql_backend)
    first = future_event()
    save_unfinished_events([first])
    other = sql_backend.sibling()
    use_backend(other)
    second = future_event()
    save_unfinished_events([second])
    with DatabaseEngine.get_session() as session:
        assert session.scalars(select(ScheduledEventRecord.event_id)).all() == [second.event_id]
    use_backend(sql_backend)
    with DatabaseEngine.get_session() as session:
        assert session.scalars(select(ScheduledEventRecord.event_id)).all() == [first.event_id]


def test_session_leaves_other_tables_alone(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    """The store's own (already named) tables mean the same thing inside the session."""
    use_backend(sql_backend)
    save_unfinished_events([future_event()])
    store = DatabaseEngine.get_store()
    with DatabaseEngine.get_session() as session:
        count = session.scalar(select(func.count()).select_from(store.tables.scheduled))
    assert count == 1


@pytest.mark.parametrize("schema", ["message_bus", "a.b", "x", ""])
def test_session_uses_every_sqlite_prefix(
    schema: str, tmp_path: Path, use_backend: UseBackend
) -> None:
    backend = sqlite_backend(tmp_path, schema=schema)
    try:
        use_backend(backend)
        event = future_event()
        save_unfinished_events([event])
        with DatabaseEngine.get_session() as session:
            assert session.scalars(select(ScheduledEventRecord.event_id)).all() == [event.event_id]
    finally:
        reset_engine()
        backend.close()


def test_created_at_defaults_to_now(sql_backend: SqlBackend, use_backend: UseBackend) -> None:
    use_backend(sql_backend)
    before = datetime.now(UTC)
    with DatabaseEngine.get_session() as session:
        session.add(
            ScheduledEventRecord(
                event_id="e1",
                event_class_name="ScheduledEvent",
                event_data={"event_id": "e1", "scheduled_time": "2030-01-01T00:00:00"},
                scheduled_time=datetime(2030, 1, 1, tzinfo=UTC),
            )
        )
        session.add(
            EventRecord(
                event_id="e2",
                event_class_name="Event",
                event_data="{}",
                timestamp=datetime.now(UTC),
            )
        )
        session.commit()
        scheduled = session.scalars(select(ScheduledEventRecord.created_at)).one()
        logged = session.scalars(select(EventRecord.created_at)).one()
    after = datetime.now(UTC)
    assert before <= scheduled <= after
    assert before <= logged <= after
