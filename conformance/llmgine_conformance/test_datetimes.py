"""Datetimes come back exactly as they went in, and due queries compare instants.

Exactly: naive stays naive, a fixed offset keeps its offset (seconds too) and
name, a ZoneInfo keeps its key, microseconds and ``fold`` stay. Due queries
(``claim(due_before=...)``, ``next_due``, the order of ``take_all``) compare
the instants the values name, whatever zone each is in, and give the same
results under any process ``TZ`` or database session time zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmgine.database.instants import MAX_INSTANT, MIN_INSTANT
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance.backends import EVENT_LOG, SESSION_TIME_ZONE, Backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.strategies import aware_datetimes, datetimes
from llmgine_conformance.strategies import datetime_identity as exactly
from llmgine_conformance.support import process_time_zone

CAPABILITY = "datetime round-trips"

PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LEASE = timedelta(hours=1)
ZONE_PAIRS = [("Pacific/Chatham", "America/St_Johns"), ("America/St_Johns", "Pacific/Chatham")]
"""(write, read) zones: far apart, with offsets that are not whole hours."""


def instant(value: datetime) -> datetime:
    """The instant ``value`` names; a naive value is local time."""
    return value.astimezone(UTC)


def add_one_by_one(store: Any, dues: Sequence[datetime]) -> list[ConformanceReminder]:
    """Add an event due at each of ``dues``, one `add` each, so insertion order is defined."""
    events = [ConformanceReminder(scheduled_time=due) for due in dues]
    for event in events:
        store.add([event])
    return events


def taken_by_id(store: Any) -> dict[str, ScheduledEvent]:
    return {event.event_id: event for event in store.take_all()}


def check_due_queries(store: Any, events: list[ConformanceReminder], cutoff: datetime) -> None:
    """next_due, claim(due_before=cutoff) and take_all agree with the events' instants.

    Takes every event back out, so the next example starts from an empty store.
    """
    in_order = sorted(events, key=lambda e: instant(e.scheduled_time))  # stable: ties keep order
    due = [e.event_id for e in in_order if instant(e.scheduled_time) <= instant(cutoff)]
    owner = f"owner-{uuid.uuid4()}"

    next_due = store.next_due()
    claimed = store.claim(owner, due_before=cutoff, lease=LEASE, limit=len(events))
    rest = store.take_all()
    store.complete(owner, [e.event_id for e in claimed])

    assert next_due == instant(in_order[0].scheduled_time)
    assert next_due.utcoffset() == timedelta(0)
    assert [e.event_id for e in claimed] == due
    assert [e.event_id for e in rest] == [e.event_id for e in in_order if e.event_id not in due]
    sent = {e.event_id: e.scheduled_time for e in events}
    assert [exactly(e.scheduled_time) for e in claimed + rest] == [
        exactly(sent[e.event_id]) for e in claimed + rest
    ]


# --- exact round trips ---------------------------------------------------------------------


@PROPERTY
@given(due=datetimes())
@example(due=MIN_INSTANT)
@example(due=MAX_INSTANT)
@example(due=datetime(2021, 11, 7, 1, 30, 0, 1, fold=1, tzinfo=ZoneInfo("America/New_York")))
@example(due=datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=7))))
def test_a_due_time_comes_back_exactly(store: Any, due: datetime) -> None:
    event = ConformanceReminder(scheduled_time=due)
    store.add([event])
    restored = taken_by_id(store)[event.event_id]
    assert exactly(restored.scheduled_time) == exactly(due)


@PROPERTY
@given(remind_at=datetimes(), moments=st.lists(datetimes(), max_size=4))
def test_datetime_fields_come_back_exactly(
    store: Any, remind_at: datetime, moments: list[datetime]
) -> None:
    event = ConformanceReminder(scheduled_time=MIN_INSTANT, remind_at=remind_at, moments=moments)
    store.add([event])
    restored = taken_by_id(store)[event.event_id]
    assert isinstance(restored, ConformanceReminder)
    assert restored.remind_at is not None
    assert exactly(restored.remind_at) == exactly(remind_at)
    assert [exactly(m) for m in restored.moments] == [exactly(m) for m in moments]


@pytest.mark.parametrize(
    "timestamp",
    ["2030-01-01T12:00:00.000001+05:30", datetime(2030, 1, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))],
    ids=["str", "datetime"],
)
def test_a_timestamp_keeps_its_type(store: Any, timestamp: str | datetime) -> None:
    event = ConformanceReminder(scheduled_time=MIN_INSTANT, timestamp=timestamp)
    store.add([event])
    [restored] = store.take_all()
    assert type(restored.timestamp) is type(timestamp)
    assert restored.timestamp == timestamp


# --- due queries compare instants ----------------------------------------------------------


@PROPERTY
@given(dues=st.lists(datetimes(), min_size=1, max_size=6), cutoff=datetimes())
def test_claim_returns_exactly_the_due_events_in_instant_order(
    store: Any, dues: list[datetime], cutoff: datetime
) -> None:
    check_due_queries(store, add_one_by_one(store, dues), cutoff)


def test_take_all_orders_by_instant_across_zones(store: Any) -> None:
    base = datetime(2030, 6, 1, 12, tzinfo=UTC)
    late_in_utc = base + timedelta(hours=3)
    early_in_new_york = (base + timedelta(hours=1)).astimezone(ZoneInfo("America/New_York"))
    middle_in_kolkata = (base + timedelta(hours=2)).astimezone(timezone(timedelta(hours=5.5)))
    first_naive_local = (base - timedelta(hours=1)).astimezone().replace(tzinfo=None)
    events = add_one_by_one(
        store, [late_in_utc, early_in_new_york, middle_in_kolkata, first_naive_local]
    )
    assert [e.event_id for e in store.take_all()] == [events[i].event_id for i in (3, 1, 2, 0)]


def test_one_microsecond_apart_orders_correctly(store: Any) -> None:
    exact = datetime(2031, 1, 1, 12, tzinfo=UTC)  # an ISO string of it has no fraction
    events = add_one_by_one(store, [exact + timedelta(microseconds=1), exact])
    assert store.next_due() == exact
    assert [e.event_id for e in store.take_all()] == [events[1].event_id, events[0].event_id]


def test_the_extreme_instants_order_and_come_back(store: Any) -> None:
    events = add_one_by_one(store, [MAX_INSTANT, MIN_INSTANT])
    assert store.next_due() == MIN_INSTANT
    assert store.take_all() == [events[1], events[0]]


def test_a_naive_due_time_is_local_time_with_fold_respected(store: Any) -> None:
    with process_time_zone("America/New_York"):  # 01:30 happens at 05:30 and at 06:30 UTC
        first, second = add_one_by_one(
            store, [datetime(2021, 11, 7, 1, 30, fold=1), datetime(2021, 11, 7, 1, 30)]
        )
        assert store.next_due() == datetime(2021, 11, 7, 5, 30, tzinfo=UTC)
        cutoff = datetime(2021, 11, 7, 6, tzinfo=UTC)
        claimed = store.claim("owner", due_before=cutoff, lease=LEASE, limit=10)
        rest = store.take_all()
    assert [e.event_id for e in claimed] == [second.event_id]
    assert [e.event_id for e in rest] == [first.event_id]
    assert exactly(rest[0].scheduled_time) == exactly(datetime(2021, 11, 7, 1, 30, fold=1))


# --- results do not depend on the process or session time zone -----------------------------


@pytest.mark.parametrize(("write_zone", "read_zone"), ZONE_PAIRS)
@settings(PROPERTY, max_examples=15)
@given(dues=st.lists(aware_datetimes(), min_size=1, max_size=5), cutoff=aware_datetimes())
def test_due_queries_ignore_the_process_time_zone(
    store: Any, write_zone: str, read_zone: str, dues: list[datetime], cutoff: datetime
) -> None:
    with process_time_zone(write_zone):
        events = add_one_by_one(store, dues)
    with process_time_zone(read_zone):
        check_due_queries(store, events, cutoff)


@pytest.fixture
def stores_by_session_zone(backend: Backend) -> dict[str, Any]:
    """A store per zone of `ZONE_PAIRS`, each reaching the database with that session zone."""
    return {zone: backend.with_session_time_zone(zone).open() for zone, _ in ZONE_PAIRS}


@pytest.mark.requires(SESSION_TIME_ZONE)
@pytest.mark.parametrize(("write_zone", "read_zone"), ZONE_PAIRS)
@settings(PROPERTY, max_examples=15)
@given(dues=st.lists(aware_datetimes(), min_size=1, max_size=5), cutoff=aware_datetimes())
@example(
    dues=[MAX_INSTANT, datetime(2021, 11, 7, 5, 30, tzinfo=UTC), MIN_INSTANT], cutoff=MIN_INSTANT
)
def test_due_queries_ignore_the_database_session_time_zone(
    stores_by_session_zone: dict[str, Any],
    write_zone: str,
    read_zone: str,
    dues: list[datetime],
    cutoff: datetime,
) -> None:
    events = add_one_by_one(stores_by_session_zone[write_zone], dues)
    check_due_queries(stores_by_session_zone[read_zone], events, cutoff)


# --- the event log's timestamps --------------------------------------------------------------

LOCAL_ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
"""Process zones for the log: DST, a 30-minute DST shift, a 45-minute offset."""
WALLS = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))


def logged_instants(log: Any, events: Sequence[Event]) -> dict[str, datetime]:
    wanted = {event.event_id for event in events}
    return {e.event_id: e.timestamp for e in log.read() if e.event_id in wanted}


def local_instants(events: Sequence[Event]) -> dict[str, datetime]:
    return {e.event_id: instant(datetime.fromisoformat(str(e.timestamp))) for e in events}


@pytest.mark.requires(EVENT_LOG)
@pytest.mark.parametrize("zone", LOCAL_ZONES)
@settings(PROPERTY, max_examples=20)
@given(walls=st.lists(WALLS, min_size=1, max_size=6), nudge=st.integers(1, 999_999))
@example(walls=[datetime(2021, 11, 7, 1, 30, 0, 500_000)], nudge=1)  # New York, repeated hour
@example(walls=[datetime(2021, 3, 14, 2, 30, 0, 250_000)], nudge=1)  # New York, skipped hour
@example(walls=[datetime(2021, 4, 4, 1, 45, 59, 999_999)], nudge=1)  # Lord Howe, repeated
@example(walls=[datetime(2030, 1, 1, 0, 0, 0, 0)], nudge=999_999)  # isoformat drops ".000000"
def test_a_logged_local_timestamp_is_its_instant(
    store: Any, zone: str, walls: list[datetime], nudge: int
) -> None:
    """``Event.timestamp`` is ``datetime.now().isoformat()`` by default: naive local time.
    Each entry's timestamp is that instant, under any process zone, also for a second
    event in the same second of wall time."""
    twins = [w.replace(microsecond=(w.microsecond + nudge) % 1_000_000) for w in walls]
    with process_time_zone(zone):
        events = [Event(timestamp=w.isoformat()) for w in walls + twins]
        store.append(events)
        expected = local_instants(events)
    assert logged_instants(store, events) == expected


@pytest.mark.requires(EVENT_LOG)
def test_the_same_wall_time_logged_after_a_zone_change_is_the_new_zones_instant(
    store: Any,
) -> None:
    wall = datetime(2030, 6, 1, 12, 0, 0, 123_456).isoformat()
    logged: dict[str, datetime] = {}
    expected: dict[str, datetime] = {}
    for zone in ("Asia/Kathmandu", "America/New_York", "UTC"):
        with process_time_zone(zone):
            events = [Event(timestamp=wall), Event(timestamp=wall)]
            store.append(events)
            expected |= local_instants(events)
        logged |= logged_instants(store, events)
    assert logged == expected
    assert len(set(expected.values())) == 3
