"""Scheduled events outlive the store: a restart gives back every unfinished event, once.

A restart is closing the store and opening a new one on the same location.
Also here: what "unfinished" means (claims, leases, release, complete, all
fenced by owner), idempotent add, and the order events come back in.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine.messages.types import SessionID
from llmgine_conformance.backends import CLOCK, RESTART, Backend
from llmgine_conformance.events import (
    ConformanceAddress,
    ConformanceContact,
    ConformanceLevel,
    ConformancePriority,
    ConformanceReminder,
)
from llmgine_conformance.support import LEASE, FakeClock, due_in, ids, restart

CAPABILITY = "restart persistence"


def full_reminder() -> ConformanceReminder:
    home = ConformanceAddress("Rue de Rivoli", 1, zone="Europe/Paris")
    return ConformanceReminder(
        scheduled_time=datetime(2030, 5, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
        session_id=SessionID("session-7"),
        metadata={"source": "test", "attempt": 2},
        text="call mum ☎",
        count=2**70,
        ratio=-0.0,
        done=True,
        amount=Decimal("12.50"),
        tags=("family", "weekly"),
        labels=frozenset({"a", "b"}),
        blob=b"\x00\xff",
        on=date(2030, 5, 1),
        at=time(9, 30, 0, 5),
        every=timedelta(days=7, microseconds=1),
        remind_at=datetime(2030, 4, 30, 18),
        moments=[datetime(2030, 1, 1, tzinfo=UTC)],
        priority=ConformancePriority.HIGH,
        level=ConformanceLevel.TWO,
        contact=ConformanceContact("Mum", home, previous=[home]),
        extra={"n": 1, "none": None, "nested": {"empty": {}}, "list": [1.5, "x"]},
    )


# --- restart ------------------------------------------------------------------------------


@pytest.mark.requires(RESTART)
def test_a_scheduled_event_survives_a_restart(backend: Backend, store: Any) -> None:
    event = ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))
    store.add([event])
    assert restart(backend, store).take_all() == [event]


@pytest.mark.requires(RESTART)
def test_every_field_and_type_survives_a_restart(backend: Backend, store: Any) -> None:
    event = full_reminder()
    store.add([event])
    [restored] = restart(backend, store).take_all()
    assert type(restored) is ConformanceReminder
    for field in fields(event):
        mine, theirs = getattr(event, field.name), getattr(restored, field.name)
        assert (type(theirs), theirs) == (type(mine), mine), field.name


@pytest.mark.requires(RESTART)
def test_unfinished_events_come_back_once_in_due_order(backend: Backend, store: Any) -> None:
    events = [ConformanceReminder(scheduled_time=due_in(s)) for s in (300, -60, 100, 200, 0)]
    store.add(events)
    store = restart(backend, store)
    assert ids(store.take_all()) == ids(sorted(events, key=lambda e: e.scheduled_time))
    assert restart(backend, store).take_all() == []


@pytest.mark.requires(RESTART)
def test_many_events_come_back_after_a_restart(backend: Backend, store: Any) -> None:
    events = [ConformanceReminder(scheduled_time=due_in(i), count=i) for i in range(300, 0, -1)]
    store.add(events)
    assert ids(restart(backend, store).take_all()) == ids(events[::-1])


@pytest.mark.requires(RESTART)
def test_taken_events_do_not_come_back(backend: Backend, store: Any) -> None:
    store.add([ConformanceReminder(), ConformanceReminder()])
    assert len(store.take_all()) == 2
    assert restart(backend, store).take_all() == []


@pytest.mark.requires(RESTART)
def test_completed_events_do_not_come_back_and_released_ones_do(
    backend: Backend, store: Any
) -> None:
    done, pending = (ConformanceReminder(scheduled_time=due_in(s)) for s in (-2, 60))
    store.add([done, pending])
    store.claim("a", due_before=due_in(0), lease=LEASE, limit=10)
    store.complete("a", [done.event_id])
    store.release("a")
    assert restart(backend, store).take_all() == [pending]


@pytest.mark.requires(RESTART, CLOCK)
def test_a_claim_outlives_a_restart_until_its_lease_expires(backend: Backend) -> None:
    clock = FakeClock()
    store = backend.open(clock=clock)
    event = ConformanceReminder(scheduled_time=clock.now)
    store.add([event])
    store.claim("crashed", due_before=clock.now, lease=LEASE, limit=10)
    store.close()
    later = backend.open(clock=clock)
    assert later.take_all() == []
    clock.advance(LEASE + timedelta(seconds=1))
    assert later.take_all() == [event]


# --- add -------------------------------------------------------------------------------------


@pytest.mark.parametrize("together", [False, True], ids=["separate-adds", "one-add"])
def test_adding_an_event_twice_keeps_the_first_due_time(store: Any, together: bool) -> None:
    first = ConformanceReminder(event_id=f"daily-{uuid.uuid4()}", scheduled_time=due_in(60))
    again = ConformanceReminder(event_id=first.event_id, scheduled_time=due_in(7200), text="x")
    if together:
        store.add([first, again])
    else:
        store.add([first])
        store.add([again])
    assert store.next_due() == first.scheduled_time
    assert store.take_all() == [first]


def test_equal_due_instants_keep_insertion_order(store: Any) -> None:
    due = due_in(60)
    events = [ConformanceReminder(scheduled_time=due, count=i) for i in range(5)]
    for event in events:
        store.add([event])
    assert ids(store.take_all()) == ids(events)


def test_adding_nothing_stores_nothing(store: Any) -> None:
    store.add([])
    assert store.next_due() is None
    assert store.take_all() == []


# --- claim, renew, release, complete ---------------------------------------------------------


def test_claim_takes_due_events_in_order_up_to_the_limit(store: Any) -> None:
    events = [ConformanceReminder(scheduled_time=due_in(-30 + i)) for i in range(5)]
    store.add([*events, ConformanceReminder(scheduled_time=due_in(3600))])
    assert ids(store.claim("a", due_before=due_in(0), lease=LEASE, limit=3)) == ids(events[:3])
    assert store.claim("b", due_before=due_in(0), lease=LEASE, limit=10) == events[3:]


@pytest.mark.parametrize("limit", [0, -1])
def test_claim_with_no_room_takes_nothing(store: Any, limit: int) -> None:
    store.add([ConformanceReminder(scheduled_time=due_in(-1))])
    assert store.claim("a", due_before=due_in(0), lease=LEASE, limit=limit) == []


def test_claimed_events_are_held_from_other_owners_and_take_all(store: Any) -> None:
    held, free = (ConformanceReminder(scheduled_time=due_in(s)) for s in (-1, 60))
    store.add([held, free])
    assert store.claim("a", due_before=due_in(0), lease=LEASE, limit=10) == [held]
    assert store.claim("b", due_before=due_in(0), lease=LEASE, limit=10) == []
    assert store.next_due() == free.scheduled_time
    assert store.take_all() == [free]


def test_renew_returns_the_ids_the_owner_still_holds(store: Any) -> None:
    first, second = (ConformanceReminder(scheduled_time=due_in(-i)) for i in (2, 1))
    store.add([first, second])
    store.claim("a", due_before=due_in(0), lease=LEASE, limit=10)
    assert store.renew("a", lease=LEASE) == {first.event_id, second.event_id}
    store.complete("a", [first.event_id])
    assert store.renew("a", lease=LEASE) == {second.event_id}


def test_a_stale_owner_changes_nothing(store: Any) -> None:
    event = ConformanceReminder(scheduled_time=due_in(-1))
    store.add([event])
    store.claim("a", due_before=due_in(0), lease=LEASE, limit=10)
    assert store.complete("b", [event.event_id]) == 0
    assert store.release("b") == 0
    assert store.renew("b", lease=LEASE) == set()
    assert store.renew("a", lease=LEASE) == {event.event_id}


def test_release_makes_events_claimable_at_once(store: Any) -> None:
    event = ConformanceReminder(scheduled_time=due_in(-1))
    store.add([event])
    store.claim("a", due_before=due_in(0), lease=LEASE, limit=10)
    assert store.release("a") == 1
    assert store.claim("b", due_before=due_in(0), lease=LEASE, limit=10) == [event]


def test_complete_deletes_only_the_given_events(store: Any) -> None:
    done, kept = (ConformanceReminder(scheduled_time=due_in(-i)) for i in (2, 1))
    store.add([done, kept])
    store.claim("a", due_before=due_in(0), lease=LEASE, limit=10)
    assert store.complete("a", [done.event_id, "no-such-event"]) == 1
    assert store.complete("a", [done.event_id]) == 0
    store.release("a")
    assert store.take_all() == [kept]


# --- leases, with a clock the test moves ---------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(backend: Backend, clock: FakeClock) -> Any:
    """A store on ``backend`` that reads the time from ``clock``."""
    return backend.open(clock=clock)


@pytest.mark.requires(CLOCK)
def test_an_expired_lease_lets_another_owner_claim(clocked: Any, clock: FakeClock) -> None:
    event = ConformanceReminder(scheduled_time=clock.now)
    clocked.add([event])
    clocked.claim("a", due_before=clock.now, lease=timedelta(seconds=30), limit=10)
    clock.advance(timedelta(seconds=29))
    assert clocked.claim("b", due_before=clock.now, lease=LEASE, limit=10) == []
    clock.advance(timedelta(seconds=2))
    assert clocked.claim("b", due_before=clock.now, lease=LEASE, limit=10) == [event]


@pytest.mark.requires(CLOCK)
def test_an_owner_whose_lease_was_taken_over_changes_nothing(
    clocked: Any, clock: FakeClock
) -> None:
    event = ConformanceReminder(scheduled_time=clock.now)
    clocked.add([event])
    clocked.claim("a", due_before=clock.now, lease=timedelta(seconds=30), limit=10)
    clock.advance(timedelta(seconds=31))
    clocked.claim("b", due_before=clock.now, lease=LEASE, limit=10)
    assert clocked.renew("a", lease=LEASE) == set()
    assert clocked.complete("a", [event.event_id]) == 0
    assert clocked.release("a") == 0
    assert clocked.renew("b", lease=LEASE) == {event.event_id}


@pytest.mark.requires(CLOCK)
def test_renew_keeps_a_lease_from_expiring(clocked: Any, clock: FakeClock) -> None:
    clocked.add([ConformanceReminder(scheduled_time=clock.now)])
    clocked.claim("a", due_before=clock.now, lease=timedelta(seconds=30), limit=10)
    clock.advance(timedelta(seconds=20))
    clocked.renew("a", lease=timedelta(seconds=30))
    clock.advance(timedelta(seconds=20))
    assert clocked.claim("b", due_before=clock.now, lease=LEASE, limit=10) == []


@pytest.mark.requires(CLOCK)
def test_events_of_an_expired_lease_are_restored_and_counted_due(
    clocked: Any, clock: FakeClock
) -> None:
    event = ConformanceReminder(scheduled_time=clock.now)
    clocked.add([event])
    clocked.claim("crashed", due_before=clock.now, lease=timedelta(seconds=30), limit=10)
    assert clocked.next_due() is None
    clock.advance(timedelta(seconds=31))
    assert clocked.next_due() == event.scheduled_time
    assert clocked.take_all() == [event]


# --- next_due ------------------------------------------------------------------------------


def test_next_due_is_the_earliest_claimable_instant(store: Any) -> None:
    assert store.next_due() is None
    early, late = (ConformanceReminder(scheduled_time=due_in(s)) for s in (100, 200))
    store.add([late, early])
    due = store.next_due()
    assert due == early.scheduled_time
    assert due.utcoffset() == timedelta(0)


def test_a_store_only_read_from_finds_nothing_and_stays_empty(backend: Backend) -> None:
    """Reads on a location nothing was written to answer empty (and, for the SQL store, create
    no file, schema or table: see the repository's tests/test_reading_the_log.py)."""
    reader = backend.open()
    assert reader.next_due() is None
    assert reader.quarantined() == []
    if hasattr(reader, "read"):
        assert reader.read() == []
    assert backend.open().take_all() == []


def test_next_due_is_none_once_everything_is_taken(store: Any) -> None:
    store.add([ConformanceReminder()])
    store.take_all()
    assert store.next_due() is None


@pytest.mark.requires(RESTART)
def test_closing_twice_is_harmless(backend: Backend) -> None:
    event = ConformanceReminder(scheduled_time=due_in(60))
    store = backend.open()
    store.add([event])
    store.close()
    store.close()
    assert backend.open().next_due() == event.scheduled_time
