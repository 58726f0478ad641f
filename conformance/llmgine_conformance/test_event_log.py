"""The event log's reads and retention, on fixtures large enough to tell right from wrong.

Reads: every filter alone and combined, checked against the same filter run
in Python over forty entries whose sessions, classes and timestamps
interleave, appended out of time order (so insertion order, not time order,
is what reads follow). Retention: ``purge`` by timestamp, ``trim`` by
insertion, both in batches that each commit on their own: a fault in a later
batch leaves the earlier batches done.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmgine.errors import StoreUnavailableError
from llmgine.messages.events import Event
from llmgine.messages.types import SessionID
from llmgine_conformance.backends import EVENT_LOG, FAULTS, Backend
from llmgine_conformance.events import ConformanceLogged
from llmgine_conformance.faults import FaultInjector
from llmgine_conformance.support import ids, process_time_zone

CAPABILITY = "event log"

pytestmark = pytest.mark.requires(EVENT_LOG)

BASE = datetime(2030, 1, 1, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def at(minutes: int, micros: int = 0) -> datetime:
    return BASE + timedelta(minutes=minutes, microseconds=micros)


@dataclass(frozen=True)
class Logged:
    """What the test appended, to filter in Python as the store should."""

    event_id: str
    session_id: str
    event_class: str
    timestamp: datetime


@pytest.fixture
def log(backend: Backend) -> Any:
    return backend.open()


@pytest.fixture
def forty(log: Any) -> list[Logged]:
    """Forty entries: three sessions and the default one, two classes, timestamps out of
    order with ties and microsecond neighbours, appended in batches of various sizes."""
    rng = random.Random(9)
    sessions = [None, "s-1", "s-2", "s-3"]
    events: list[Event] = []
    for i in range(40):
        session = sessions[rng.randrange(4)]
        stamp = at(rng.choice([0, 5, 10, 10, 15, 20]), rng.choice([0, 0, 1]))
        kind = ConformanceLogged if rng.random() < 0.4 else Event
        event = kind(event_id=f"e{i:02d}-{rng.random()}", timestamp=stamp)
        if session is not None:  # else the default, the bus's own session
            event.session_id = SessionID(session)
        events.append(event)
    for start, stop in ((0, 1), (1, 8), (8, 9), (9, 25), (25, 40)):
        log.append(events[start:stop])
    return [
        Logged(
            e.event_id,
            str(e.session_id),
            type(e).__name__,
            e.timestamp if isinstance(e.timestamp, datetime) else BASE,
        )
        for e in events
    ]


FILTERS: list[dict[str, Any]] = [
    {},
    {"session_id": "s-1"},
    {"session_id": "s-2"},
    {"session_id": "no-such-session"},
    {"event_class": "ConformanceLogged"},
    {"event_class": "Event"},
    {"since": at(10)},
    {"since": at(10, 1)},
    {"until": at(10)},
    {"until": at(10, 1)},
    {"since": at(5), "until": at(15)},
    {"since": at(10), "until": at(10)},
    {"session_id": "s-3", "event_class": "Event"},
    {"session_id": "s-1", "since": at(5, 1), "until": at(20)},
    {"event_class": "ConformanceLogged", "since": at(0, 1)},
    {"limit": 5},
    {"limit": 0},
    {"session_id": "s-2", "limit": 3},
    {"event_class": "Event", "since": at(10), "limit": 4},
]


def expected(forty: list[Logged], entries_ids: list[int], **f: Any) -> list[str]:
    """The event_ids a correct read with filters ``f`` returns, given the ids the log gave."""
    after = f.get("after_id")
    found = [
        e.event_id
        for e, entry_id in zip(forty, entries_ids, strict=True)
        if ("session_id" not in f or e.session_id == f["session_id"])
        and ("event_class" not in f or e.event_class == f["event_class"])
        and ("since" not in f or e.timestamp >= f["since"])
        and ("until" not in f or e.timestamp < f["until"])
        and (after is None or entry_id > after)
    ]
    return found if f.get("limit") is None else found[: f["limit"]]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "-".join(f) or "none")
def test_read_returns_exactly_the_entries_the_filters_select(
    log: Any, forty: list[Logged], filters: dict[str, Any]
) -> None:
    entry_ids = [entry.id for entry in log.read()]
    assert ids(log.read(**filters)) == expected(forty, entry_ids, **filters)


@pytest.mark.parametrize("filters", FILTERS[:15], ids=lambda f: "-".join(f) or "none")
def test_read_pages_through_any_filter_with_after_id_and_limit(
    log: Any, forty: list[Logged], filters: dict[str, Any]
) -> None:
    entry_ids = [entry.id for entry in log.read()]
    paged: list[str] = []
    after: int | None = None
    for _ in range(len(forty) + 1):  # bounded: a read that ignores after_id never runs dry
        page = log.read(**filters, after_id=after, limit=4)
        if not page:
            break
        assert len(page) <= 4
        paged.extend(ids(page))
        after = page[-1].id
        assert ids(page) == expected(forty, entry_ids, **filters, after_id=page[0].id - 1)[:4]
    assert paged == expected(forty, entry_ids, **filters)


def test_entries_come_back_in_insertion_order_with_growing_ids(
    log: Any, forty: list[Logged]
) -> None:
    entries = log.read()
    assert ids(entries) == [e.event_id for e in forty]
    assert [e.id for e in entries] == sorted({e.id for e in entries})


def test_every_instant_read_back_is_aware_utc(log: Any, forty: list[Logged]) -> None:
    for entry in log.read():
        assert entry.timestamp.utcoffset() == timedelta(0)
        assert entry.created_at.utcoffset() == timedelta(0)
    assert [e.timestamp for e in log.read()] == [e.timestamp for e in forty]


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/St_Johns"])
def test_naive_bounds_are_local_time(log: Any, forty: list[Logged], zone: str) -> None:
    entry_ids = [entry.id for entry in log.read()]
    with process_time_zone(zone):
        since, until = (at(m).astimezone().replace(tzinfo=None) for m in (5, 15))
        assert ids(log.read(since=since, until=until)) == expected(
            forty, entry_ids, since=at(5), until=at(15)
        )
        assert log.purge(since) == len([e for e in forty if e.timestamp < at(5)])
    assert all(e.timestamp >= at(5) for e in log.read())


def test_re_appending_overlapping_batches_logs_each_event_once(
    log: Any, forty: list[Logged]
) -> None:
    again = [Event(event_id=e.event_id, timestamp=e.timestamp) for e in forty]
    log.append(again[5:30])
    log.append([*again[35:], *again[:2]])
    assert ids(log.read()) == [e.event_id for e in forty]


def test_a_batch_mixing_logged_and_new_events_logs_the_new_ones(
    log: Any, forty: list[Logged]
) -> None:
    fresh = [Event(timestamp=at(30)) for _ in range(3)]
    again = [Event(event_id=e.event_id, timestamp=e.timestamp) for e in forty[:2]]
    log.append([again[0], fresh[0], again[1], *fresh[1:]])
    assert ids(log.read()) == [e.event_id for e in forty] + ids(fresh)


def test_retrying_an_append_after_a_purge_does_not_duplicate_what_the_purge_kept(
    log: Any, forty: list[Logged]
) -> None:
    log.purge(at(10))
    kept = ids(log.read())
    log.append([Event(event_id=e.event_id, timestamp=e.timestamp) for e in forty])
    assert [i for i in ids(log.read()) if i in kept] == kept


def test_retrying_an_append_after_a_trim_does_not_duplicate_what_the_trim_kept(
    log: Any, forty: list[Logged]
) -> None:
    log.trim(15)
    kept = ids(log.read())
    log.append([Event(event_id=e.event_id, timestamp=e.timestamp) for e in forty])
    assert [i for i in ids(log.read()) if i in kept] == kept


# --- purge and trim ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_purge_deletes_by_timestamp_not_by_position(
    log: Any, forty: list[Logged], batch_size: int
) -> None:
    cutoff = at(10, 1)
    gone = [e for e in forty if e.timestamp < cutoff]
    assert log.purge(cutoff, batch_size=batch_size) == len(gone)
    assert ids(log.read()) == [e.event_id for e in forty if e.timestamp >= cutoff]
    assert log.purge(cutoff, batch_size=batch_size) == 0


def test_purge_keeps_an_entry_exactly_at_the_cutoff(log: Any) -> None:
    events = [Event(timestamp=at(0, m)) for m in (2, 0, 1, 1, 3)]
    log.append(events)
    assert log.purge(at(0, 1), batch_size=1) == 1
    assert ids(log.read()) == ids(events[:1] + events[2:])


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
@pytest.mark.parametrize("keep", [0, 1, 13, 40, 41])
def test_trim_keeps_the_newest_by_insertion_not_by_timestamp(
    log: Any, forty: list[Logged], keep: int, batch_size: int
) -> None:
    assert log.trim(keep, batch_size=batch_size) == max(40 - keep, 0)
    assert ids(log.read()) == [e.event_id for e in forty][max(40 - keep, 0) :]


@pytest.fixture
def injector(backend: Backend) -> Iterator[FaultInjector]:
    assert backend.faults is not None
    yield backend.faults
    backend.faults.clear()


def fail_second_delete(injector: FaultInjector) -> None:
    """Let the first DELETE statement through and fail the one after it."""
    injector.before("delete", lambda: injector.fail("delete", times=1))


@pytest.mark.requires(FAULTS)
def test_purge_commits_batch_by_batch(log: Any, injector: FaultInjector) -> None:
    events = [Event(timestamp=at(m)) for m in (3, 0, 4, 1, 5, 2, 9, 9)]
    log.append(events)
    fail_second_delete(injector)
    with pytest.raises(StoreUnavailableError):
        log.purge(at(6), batch_size=2)
    assert ids(log.read()) == ids(events[2:])  # the oldest batch (by insertion) went, alone
    assert log.purge(at(6), batch_size=2) == 4
    assert ids(log.read()) == ids(events[6:])


@pytest.mark.requires(FAULTS)
def test_trim_commits_batch_by_batch_oldest_first(log: Any, injector: FaultInjector) -> None:
    events = [Event(timestamp=at(m)) for m in (5, 0, 4, 1, 3, 2, 9)]
    log.append(events)
    fail_second_delete(injector)
    with pytest.raises(StoreUnavailableError):
        log.trim(1, batch_size=3)
    assert ids(log.read()) == ids(events[3:])
    assert log.trim(1, batch_size=3) == 3
    assert ids(log.read()) == ids(events[6:])
