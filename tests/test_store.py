"""The store contract on every built-in backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from llmgine.database.codec import dumps, encode_event
from llmgine.messages import Event, ScheduledEvent, register_scheduled_event_class
from llmgine_conformance.backends import Backend


@register_scheduled_event_class
@dataclass(kw_only=True)
class StoreTestReminder(ScheduledEvent):
    text: str = ""
    tags: tuple[str, ...] = ()
    due_local: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict)


def soon(seconds: float = 3600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def reminder(seconds: float = 3600, **fields: object) -> StoreTestReminder:
    return StoreTestReminder(scheduled_time=soon(seconds), **fields)  # type: ignore[arg-type]


def test_events_survive_a_restart_with_every_field(backend: Backend) -> None:
    event = reminder(
        text="call mum",
        tags=("family", "weekly"),
        due_local=datetime(2030, 5, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
        extra={"n": 1, "none": None, "nested": {"empty": {}}},
    )
    backend.open().add([event])
    restored = backend.open().take_all()
    assert restored == [event]
    assert isinstance(restored[0], StoreTestReminder)
    assert restored[0].tags == ("family", "weekly")


def test_take_all_removes_what_it_returns(backend: Backend) -> None:
    store = backend.open()
    store.add([reminder(), reminder()])
    assert len(store.take_all()) == 2
    assert store.take_all() == []


def test_take_all_orders_by_due_instant_across_zones(backend: Backend) -> None:
    base = datetime.now(UTC) + timedelta(days=1)
    late_in_utc = ScheduledEvent(scheduled_time=base + timedelta(hours=3))
    early_in_new_york = ScheduledEvent(
        scheduled_time=(base + timedelta(hours=1)).astimezone(ZoneInfo("America/New_York"))
    )
    middle_in_kolkata = ScheduledEvent(
        scheduled_time=(base + timedelta(hours=2)).astimezone(
            timezone(timedelta(hours=5, minutes=30))
        )
    )
    naive_local_first = ScheduledEvent(
        scheduled_time=(base - timedelta(hours=1)).astimezone().replace(tzinfo=None)
    )
    store = backend.open()
    store.add([late_in_utc, early_in_new_york, middle_in_kolkata, naive_local_first])
    ids = [e.event_id for e in store.take_all()]
    assert ids == [
        naive_local_first.event_id,
        early_in_new_york.event_id,
        middle_in_kolkata.event_id,
        late_in_utc.event_id,
    ]


def test_equal_due_instants_keep_insertion_order(backend: Backend) -> None:
    due = soon()
    events = [ScheduledEvent(scheduled_time=due) for _ in range(5)]
    store = backend.open()
    for event in events:
        store.add([event])
    assert [e.event_id for e in store.take_all()] == [e.event_id for e in events]


def test_adding_an_event_twice_keeps_one_row_and_the_first_due_time(backend: Backend) -> None:
    store = backend.open()
    first = ScheduledEvent(event_id="daily-report", scheduled_time=soon(60))
    store.add([first])
    store.add([ScheduledEvent(event_id="daily-report", scheduled_time=soon(7200))])
    assert store.take_all() == [first]


def test_extreme_instants_round_trip(backend: Backend) -> None:
    earliest = ScheduledEvent(scheduled_time=datetime(1, 1, 2, tzinfo=UTC))
    latest = ScheduledEvent(scheduled_time=datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC))
    backend.open().add([latest, earliest])
    assert backend.open().take_all() == [earliest, latest]


def test_microseconds_order_correctly(backend: Backend) -> None:
    base = datetime(2031, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = ScheduledEvent(scheduled_time=base + timedelta(microseconds=1))
    exact = ScheduledEvent(scheduled_time=base)  # isoformat drops zero microseconds
    store = backend.open()
    store.add([later, exact])
    assert [e.event_id for e in store.take_all()] == [exact.event_id, later.event_id]


def test_unknown_class_is_quarantined_not_deleted(backend: Backend) -> None:
    backend.insert_raw(
        event_id="ghost",
        event_class_name="NoSuchEventClass",
        event_data=dumps({"event_id": "ghost"}),
        due=soon(),
    )
    good = reminder(text="fine")
    store = backend.open()
    store.add([good])
    assert store.take_all() == [good]
    [bad] = store.quarantined()
    assert (bad.event_id, bad.event_class_name) == ("ghost", "NoSuchEventClass")
    assert "NoSuchEventClass" in bad.reason
    assert store.take_all() == []
    assert [q.event_id for q in backend.open().quarantined()] == ["ghost"]


def test_malformed_payload_is_quarantined_with_a_reason(backend: Backend) -> None:
    backend.insert_raw(
        event_id="broken",
        event_class_name="ScheduledEvent",
        event_data=dumps({"scheduled_time": {"$type": "no-such-tag"}}),
        due=soon(),
    )
    store = backend.open()
    assert store.take_all() == []
    [bad] = store.quarantined()
    assert "no-such-tag" in bad.reason
    assert "no-such-tag" in bad.event_data


def test_quarantined_rows_are_not_claimed(backend: Backend) -> None:
    backend.insert_raw(event_id="bad", event_class_name="Nope", event_data="{}", due=soon(-60))
    store = backend.open()
    assert store.claim("me", due_before=soon(), lease=timedelta(minutes=1), limit=10) == []
    assert [q.event_id for q in store.quarantined()] == ["bad"]
    assert store.next_due() is None


def test_concurrent_take_all_delivers_each_event_once(backend: Backend) -> None:
    added: list[str] = []
    taken: list[list[str]] = []
    lock = threading.Lock()
    adding_done = threading.Event()

    def add() -> None:
        store = backend.open()
        for _ in range(20):
            batch = [ScheduledEvent(scheduled_time=soon()) for _ in range(5)]
            store.add(batch)
            with lock:
                added.extend(e.event_id for e in batch)
        adding_done.set()

    def take() -> None:
        store = backend.open()
        while True:
            done = adding_done.is_set()
            got = [e.event_id for e in store.take_all()]
            with lock:
                taken.append(got)
            if done:
                return
            time.sleep(0.002)  # takers poll; a tight loop would starve the writer of SQLite's lock

    threads = [threading.Thread(target=add)] + [threading.Thread(target=take) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = [event_id for batch in taken for event_id in batch]
    everything += [e.event_id for e in backend.open().take_all()]
    assert sorted(everything) == sorted(added)


def test_claim_takes_due_events_in_order_up_to_the_limit(backend: Backend) -> None:
    store = backend.open()
    events = [reminder(-30 + i) for i in range(5)] + [reminder(3600)]
    store.add(events)
    claimed = store.claim("a", due_before=soon(0), lease=timedelta(minutes=5), limit=3)
    assert [e.event_id for e in claimed] == [e.event_id for e in events[:3]]
    assert store.claim("b", due_before=soon(0), lease=timedelta(minutes=5), limit=10) == events[3:5]


def test_claimed_events_are_not_taken_by_take_all(backend: Backend) -> None:
    store = backend.open()
    store.add([reminder(-1), reminder(60)])
    [held] = store.claim("a", due_before=soon(0), lease=timedelta(minutes=5), limit=10)
    assert held.event_id not in [e.event_id for e in store.take_all()]


def test_complete_and_release_are_fenced_by_owner(backend: Backend) -> None:
    store = backend.open()
    first, second = reminder(-2), reminder(-1)
    store.add([first, second])
    store.claim("a", due_before=soon(0), lease=timedelta(minutes=5), limit=10)
    assert store.complete("b", [first.event_id]) == 0
    assert store.release("b") == 0
    assert store.renew("b", lease=timedelta(minutes=5)) == set()
    assert store.renew("a", lease=timedelta(minutes=5)) == {first.event_id, second.event_id}
    assert store.complete("a", [first.event_id]) == 1
    assert store.release("a") == 1
    assert store.take_all() == [second]


def test_expired_leases_can_be_claimed_by_another_owner(backend: Backend) -> None:
    now = [datetime.now(UTC)]
    store = backend.open(clock=lambda: now[0])
    event = reminder(-1)
    store.add([event])
    store.claim("a", due_before=now[0], lease=timedelta(seconds=30), limit=10)
    assert store.claim("b", due_before=now[0], lease=timedelta(seconds=30), limit=10) == []
    now[0] += timedelta(seconds=31)
    assert store.claim("b", due_before=now[0], lease=timedelta(seconds=30), limit=10) == [event]
    assert store.complete("a", [event.event_id]) == 0


def test_next_due_is_the_earliest_claimable_instant(backend: Backend) -> None:
    store = backend.open()
    assert store.next_due() is None
    early, late = reminder(100), reminder(200)
    store.add([late, early])
    assert store.next_due() == early.scheduled_time


def test_log_append_is_idempotent_and_read_in_order(backend: Backend) -> None:
    store = backend.open()
    events = [Event(session_id="s1"), Event(session_id="s2"), Event(session_id="s1")]  # type: ignore[arg-type]
    store.append(events)
    store.append(events[:1])
    entries = store.read()
    assert [e.event_id for e in entries] == [e.event_id for e in events]
    assert [e.event_id for e in store.read(session_id="s1")] == [
        events[0].event_id,
        events[2].event_id,
    ]
    assert store.read(after_id=entries[1].id, limit=5)[0].event_id == events[2].event_id


def test_log_keeps_unencodable_values_as_repr(backend: Backend) -> None:
    @dataclass(kw_only=True)
    class Odd(Event):
        thing: object = None

    store = backend.open()
    store.append([Odd(thing=object())])
    [entry] = store.read(event_class="Odd")
    assert entry.data["thing"]["$type"] == "repr"
    assert entry.data["thing"]["v"].startswith("<object object")


def test_log_filters_by_time_range(backend: Backend) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    events = [Event(timestamp=(base + timedelta(hours=i)).isoformat()) for i in range(4)]
    store = backend.open()
    store.append(events)
    found = store.read(since=base + timedelta(hours=1), until=base + timedelta(hours=3))
    assert [e.event_id for e in found] == [events[1].event_id, events[2].event_id]


def test_purge_deletes_old_entries_in_batches(backend: Backend) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    store = backend.open()
    store.append([Event(timestamp=base + timedelta(minutes=i)) for i in range(25)])
    assert store.purge(base + timedelta(minutes=20), batch_size=7) == 20
    assert len(store.read()) == 5


def test_payload_of_a_stored_event_is_plain_json(backend: Backend) -> None:
    event = reminder(text="x")
    assert dumps(encode_event(event))  # the stored form is JSON text
    backend.open().add([event])
    assert backend.open().take_all()[0].text == "x"


def test_unique_ids_in_many_events(backend: Backend) -> None:
    store = backend.open()
    events = [ScheduledEvent(event_id=str(uuid.uuid4()), scheduled_time=soon()) for _ in range(300)]
    store.add(events)
    assert {e.event_id for e in store.take_all()} == {e.event_id for e in events}


@pytest.mark.parametrize("limit", [0, -1])
def test_claim_with_no_room_takes_nothing(backend: Backend, limit: int) -> None:
    store = backend.open()
    store.add([reminder(-1)])
    assert store.claim("a", due_before=soon(0), lease=timedelta(minutes=1), limit=limit) == []


@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Chatham", "Pacific/Kiritimati"])
def test_postgres_session_time_zone_does_not_change_results(postgres_url: str, zone: str) -> None:
    from urllib.parse import quote

    from llmgine_conformance.backends import SqlBackend, postgres_backend

    events = [
        ScheduledEvent(scheduled_time=datetime(1, 1, 2, tzinfo=UTC)),
        ScheduledEvent(scheduled_time=datetime(2021, 11, 7, 5, 30, tzinfo=UTC)),
        ScheduledEvent(scheduled_time=datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)),
    ]
    separator = "&" if "?" in postgres_url else "?"
    local = postgres_backend(postgres_url + separator + "options=" + quote(f"-c timezone={zone}"))
    try:
        local.open().add(events)
        utc = SqlBackend("postgres", postgres_url, local.schema)
        assert utc.open().next_due() == events[0].scheduled_time
        assert local.open().take_all() == events
        utc.close()
    finally:
        local.close()


@contextmanager
def process_time_zone(name: str) -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_process_time_zone_does_not_change_results(backend: Backend) -> None:
    aware = [
        ScheduledEvent(scheduled_time=datetime(2030, 3, 31, 1, 30, tzinfo=UTC)),
        ScheduledEvent(
            scheduled_time=datetime(2030, 3, 31, 0, 30, tzinfo=ZoneInfo("Europe/London"))
        ),
    ]
    backend.open().add(aware)
    with process_time_zone("Asia/Kathmandu"):
        restored = backend.open().take_all()
    assert restored == [aware[1], aware[0]]
    assert [e.scheduled_time.tzinfo for e in restored] == [ZoneInfo("Europe/London"), UTC]
