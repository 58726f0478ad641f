"""Namespaces (PostgreSQL schemas, SQLite table prefixes) in one database never mix.

Two stores configured with different namespaces share a database but nothing
else: neither sees the other's scheduled events or log entries, and every
object a store creates lands in its own namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmgine.messages.events import Event
from llmgine_conformance.backends import CATALOG, EVENT_LOG, NAMESPACES, Backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import LEASE

CAPABILITY = "namespace isolation"


@pytest.fixture
def neighbour(backend: Backend) -> Any:
    """A store in another namespace of ``backend``'s database."""
    return backend.sibling().open()


@pytest.mark.requires(NAMESPACES)
def test_neighbours_never_take_each_others_events(store: Any, neighbour: Any) -> None:
    mine, theirs = ConformanceReminder(text="mine"), ConformanceReminder(text="theirs")
    store.add([mine])
    neighbour.add([theirs])
    assert neighbour.take_all() == [theirs]
    assert store.take_all() == [mine]


@pytest.mark.requires(NAMESPACES)
def test_neighbours_never_claim_or_see_each_others_due_times(store: Any, neighbour: Any) -> None:
    store.add([ConformanceReminder(scheduled_time=datetime.now(UTC) - timedelta(minutes=1))])
    assert neighbour.next_due() is None
    assert neighbour.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=10) == []
    assert neighbour.release("a") == 0


@pytest.mark.requires(NAMESPACES)
def test_one_event_id_in_two_namespaces_is_two_events(store: Any, neighbour: Any) -> None:
    mine = ConformanceReminder(event_id="shared-id", text="mine")
    theirs = ConformanceReminder(event_id="shared-id", text="theirs")
    store.add([mine])
    neighbour.add([theirs])
    assert [e.text for e in store.take_all()] == ["mine"]
    assert [e.text for e in neighbour.take_all()] == ["theirs"]


@pytest.mark.requires(NAMESPACES, EVENT_LOG)
def test_neighbours_never_read_each_others_log(store: Any, neighbour: Any) -> None:
    mine, theirs = Event(), Event()
    store.append([mine])
    neighbour.append([theirs, Event(event_id=mine.event_id)])
    assert [e.event_id for e in store.read()] == [mine.event_id]
    assert [e.event_id for e in neighbour.read()] == [theirs.event_id, mine.event_id]
    assert neighbour.purge(datetime(9999, 1, 1, tzinfo=UTC)) == 2
    assert [e.event_id for e in store.read()] == [mine.event_id]


@pytest.mark.requires(CATALOG, EVENT_LOG)
def test_every_object_the_store_creates_is_in_its_namespace(backend: Backend, store: Any) -> None:
    already_there = set(backend.foreign_objects())  # other namespaces sharing the database
    event = ConformanceReminder(scheduled_time=datetime.now(UTC) - timedelta(minutes=1))
    store.add([event])
    store.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=10)
    store.release("a")
    store.take_all()
    store.quarantined()
    store.append([Event()])
    store.read()
    store.purge(datetime(2000, 1, 1, tzinfo=UTC))
    assert sorted(set(backend.foreign_objects()) - already_there) == []
