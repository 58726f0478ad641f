"""A stored row is restored only with what it holds: a payload lacking what its class
requires is quarantined with a reason, and the row's ``event_id`` column is the event's
identity, never a fresh default."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from llmgine.database import get_and_delete_unfinished_events
from llmgine_conformance.backends import Backend, MemoryBackend, SqlBackend

UseBackend = Callable[[SqlBackend], None]

DUE = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
"""Long past: a restored row is taken at once."""


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def raw_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    backend: Backend = request.getfixturevalue(f"{request.param}_db")
    return backend


def plant(backend: Backend, event_id: str, data: object, cls: str = "ScheduledEvent") -> None:
    backend.insert_raw(
        event_id=event_id, event_class_name=cls, event_data=json.dumps(data), due=DUE
    )


def test_a_payload_without_the_base_fields_is_quarantined(raw_backend: Backend) -> None:
    plant(raw_backend, "bad", {"invalid": "data"})
    store = raw_backend.open()
    assert store.take_all() == []
    [quarantined] = store.quarantined()
    assert quarantined.event_id == "bad"
    assert "scheduled_time" in quarantined.reason


def test_a_malformed_row_never_fires_through_the_seed_api(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    plant(sql_backend, "bad", {"invalid": "data"})
    use_backend(sql_backend)
    assert get_and_delete_unfinished_events() == []
    assert [q.event_id for q in sql_backend.open().quarantined()] == ["bad"]


def test_the_event_id_column_is_the_identity(raw_backend: Backend) -> None:
    due = "2020-01-01T12:00:00+00:00"
    plant(raw_backend, "from-column", {"scheduled_time": due})
    plant(raw_backend, "column-wins", {"event_id": "payload-id", "scheduled_time": due})
    restored = raw_backend.open().take_all()
    assert sorted(e.event_id for e in restored) == ["column-wins", "from-column"]


def test_the_due_time_comes_from_the_payload_not_now(raw_backend: Backend) -> None:
    due = datetime.now(UTC) + timedelta(days=3)
    plant(raw_backend, "later", {"scheduled_time": due.isoformat()})
    [event] = raw_backend.open().take_all()
    assert event.scheduled_time == due
