"""Payloads come back as they went in: every value, of the same type; never a silent loss.

A scheduled event's fields round-trip through the store to equal values of the
same type. One that cannot be stored is refused by `add` with an error naming
the class and the field, and nothing of that `add` is stored. The event log
keeps what it cannot encode as a readable repr, and reads back in insertion
order with filters.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from llmgine.errors import UnstorableEventError
from llmgine.messages.events import Event
from llmgine.messages.types import SessionID
from llmgine_conformance.backends import EVENT_LOG, Backend
from llmgine_conformance.events import (
    ConformanceAddress,
    ConformanceContact,
    ConformanceLevel,
    ConformanceLogged,
    ConformancePayload,
    ConformancePriority,
    ConformanceReminder,
)
from llmgine_conformance.strategies import datetime_identity, json_values, scheduled_events

CAPABILITY = "payload fidelity"

PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HOME = ConformanceAddress("Main St", 1)
S1 = SessionID("session-1")

VALUES: dict[str, Any] = {
    "none": None,
    "empty-dict": {},
    "dict-with-null": {"a": None},
    "list-of-nulls": [None, {}, {"a": None}, []],
    "emoji": "👩‍🚀🎉 ok",
    "combining-marks": "e\u0301 a\u0308\u0323",
    "right-to-left": "مرحبا \u202eabc\u202c שלום",
    "nul": "a\x00b",
    "lone-surrogate": "x\ud800y",
    "unicode-keys": {"ключ": "值", "": "empty key", "a\x00": 1},
    "bool-not-int": [True, False, 1, 0],
    "big-int": [2**63, -(2**63) - 1, 2**200],
    "floats": [0.1, -0.0, 1e308, 5e-324, math.inf, -math.inf],
    "decimal": Decimal("1.10"),
    "decimal-exponent": Decimal("1E+3"),
    "decimal-nan": Decimal("NaN"),
    "decimal-negative-zero": Decimal("-0.00"),
    "decimal-infinity": Decimal("-Infinity"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "bytes": bytes(range(256)),
    "empty-bytes": b"",
    "bytearray": bytearray(b"\x00\x01"),
    "enum": ConformancePriority.HIGH,
    "int-enum": ConformanceLevel.TWO,
    "tuple": (1, "a", (2, None), ()),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "dataclass": ConformanceContact("Ann", HOME, previous=[HOME, ConformanceAddress("Old", 2)]),
    "frozen-dataclass": HOME,
    "date": date(1, 1, 1),
    "time-with-offset": time(23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3))),
    "timedelta": timedelta(days=-1, microseconds=1),
    "non-string-keys": {1: "int", (1, 2): "tuple", None: "none"},
    "type-tag-key": {"$type": "decimal", "v": "1"},
    "mixed": {"when": datetime(2030, 1, 1, tzinfo=UTC), "items": [Decimal("2"), b"x", (1,)]},
}


def identical(actual: Any, expected: Any) -> bool:
    """Equal, and of the same type all the way down (so True is not 1, nor 1.0 1)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, datetime):
        return datetime_identity(actual) == datetime_identity(expected)
    if isinstance(expected, Decimal | float):
        return repr(actual) == repr(expected)  # keeps NaN, -0.0 and the exponent apart
    if isinstance(expected, dict):
        pairs = zip(
            sorted(actual.items(), key=repr), sorted(expected.items(), key=repr), strict=False
        )
        return len(actual) == len(expected) and all(
            identical(ak, ek) and identical(av, ev) for (ak, av), (ek, ev) in pairs
        )
    if isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(map(identical, actual, expected))
    return bool(actual == expected)


def round_trip(store: Any, value: Any) -> Any:
    event = ConformancePayload(value=value)
    store.add([event])
    [restored] = store.take_all()
    assert restored.event_id == event.event_id
    return restored.value


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_a_value_comes_back_identical(store: Any, value: Any) -> None:
    assert identical(round_trip(store, value), value)


@pytest.mark.parametrize(
    "value", ["x" * 1_000_000, list(range(10_000))], ids=["1-MB-string", "10000-element-list"]
)
def test_a_large_value_comes_back_whole(store: Any, value: Any) -> None:
    assert round_trip(store, value) == value


@PROPERTY
@given(value=json_values())
def test_any_json_value_comes_back_identical(store: Any, value: Any) -> None:
    assert identical(round_trip(store, value), value)


@PROPERTY
@given(event=scheduled_events())
def test_any_scheduled_event_comes_back_identical(store: Any, event: ConformanceReminder) -> None:
    store.add([event])
    restored = {e.event_id: e for e in store.take_all()}[event.event_id]
    for field in fields(event):
        assert identical(getattr(restored, field.name), getattr(event, field.name)), field.name


# --- what cannot be stored is refused, never lost ------------------------------------------


@dataclass
class NotAnnotated:
    """A dataclass no field of `ConformancePayload` names, so it could not be restored."""

    x: int = 0


class Opaque:
    def __repr__(self) -> str:
        return "Opaque(42)"


UNSTORABLE: dict[str, Any] = {
    "object": object(),
    "function": lambda: None,
    "nested-deep-in-a-list": {"k": [1, 2, Opaque()]},
    "unannotated-dataclass": NotAnnotated(),
}


@pytest.mark.parametrize("value", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_an_unstorable_value_is_refused_naming_class_and_field(store: Any, value: Any) -> None:
    fine = ConformancePayload(value="fine")
    with pytest.raises(UnstorableEventError, match=r"ConformancePayload\.value"):
        store.add([fine, ConformancePayload(value=value)])
    assert store.take_all() == []
    assert store.next_due() is None


def test_a_due_time_that_is_not_a_datetime_is_refused_naming_class_and_field(store: Any) -> None:
    fine = ConformancePayload(value="fine")
    late = ConformancePayload(scheduled_time="tomorrow")  # type: ignore[arg-type]
    with pytest.raises(UnstorableEventError, match=r"ConformancePayload\.scheduled_time"):
        store.add([fine, late])
    assert store.take_all() == []


# --- the event log --------------------------------------------------------------------------


@pytest.fixture
def log(backend: Backend) -> Any:
    """A store on ``backend`` used as an `EventLog`."""
    return backend.open()


def at(hour: int) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=hour)


def events_at(*hours: int) -> list[Event]:
    return [Event(timestamp=at(hour)) for hour in hours]


def logged_ids(entries: list[Any]) -> list[str]:
    return [entry.event_id for entry in entries]


@pytest.mark.requires(EVENT_LOG)
def test_log_keeps_an_unencodable_value_as_a_readable_repr(log: Any) -> None:
    log.append([ConformanceLogged(note="kept", thing=Opaque())])
    [entry] = log.read()
    assert entry.event_class_name == "ConformanceLogged"
    assert entry.data["note"] == "kept"
    assert "Opaque(42)" in str(entry.data["thing"])


@pytest.mark.requires(EVENT_LOG)
def test_log_append_is_idempotent_by_event_id(log: Any) -> None:
    events = [Event(), Event()]
    log.append(events)
    log.append(events)
    log.append([Event(event_id=events[0].event_id)])
    assert logged_ids(log.read()) == logged_ids(events)


@pytest.mark.requires(EVENT_LOG)
def test_log_reads_in_insertion_order_not_time_order(log: Any) -> None:
    events = events_at(3, 1, 2)
    for event in events:
        log.append([event])
    entries = log.read()
    assert logged_ids(entries) == logged_ids(events)
    assert [e.id for e in entries] == sorted(e.id for e in entries)


@pytest.mark.requires(EVENT_LOG)
def test_log_read_filters_by_session_and_class(log: Any) -> None:
    plain, logged, other = Event(session_id=S1), ConformanceLogged(session_id=S1), Event()
    log.append([plain, logged, other])
    assert logged_ids(log.read(session_id=S1)) == [plain.event_id, logged.event_id]
    assert logged_ids(log.read(event_class="ConformanceLogged")) == [logged.event_id]
    assert log.read(session_id=S1, event_class="Event")[0].event_id == plain.event_id


@pytest.mark.requires(EVENT_LOG)
def test_log_read_since_is_inclusive_and_until_exclusive(log: Any) -> None:
    events = events_at(0, 1, 2, 3)
    log.append(events)
    tokyo = timezone(timedelta(hours=9))
    found = log.read(since=at(1).astimezone(tokyo), until=at(3))
    assert logged_ids(found) == logged_ids(events[1:3])


@pytest.mark.requires(EVENT_LOG)
def test_log_pages_with_after_id_and_limit(log: Any) -> None:
    events = [Event() for _ in range(7)]
    log.append(events)
    pages: list[list[str]] = []
    after: int | None = None
    for _ in range(len(events)):  # bounded: a read that ignores after_id never runs dry
        page = log.read(after_id=after, limit=3)
        if not page:
            break
        pages.append(logged_ids(page))
        after = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [event_id for page in pages for event_id in page] == logged_ids(events)


@pytest.mark.requires(EVENT_LOG)
def test_log_timestamp_is_the_events_instant_in_utc(log: Any) -> None:
    tokyo_noon = "2030-01-01T12:00:00+09:00"
    log.append([Event(timestamp=tokyo_noon)])
    [entry] = log.read()
    assert entry.timestamp == datetime(2030, 1, 1, 3, tzinfo=UTC)
    assert entry.timestamp.utcoffset() == timedelta(0)


@pytest.mark.requires(EVENT_LOG)
def test_purge_deletes_entries_before_the_cutoff_in_batches(log: Any) -> None:
    events = events_at(*range(25))
    log.append(events)
    assert log.purge(at(20), batch_size=7) == 20
    assert logged_ids(log.read()) == logged_ids(events[20:])
    assert log.purge(at(20), batch_size=7) == 0


HOSTILE = 'tab\there, line\nbreak, cr\rreturn, back\\slash, \\N, quote", nul\x00, emoji 🎉, ümlaut'


@pytest.mark.requires(EVENT_LOG)
def test_log_keeps_hostile_text_exact_in_a_large_batch(log: Any) -> None:
    """Large batches may take a bulk path (PostgreSQL COPY) with escaping rules of its own."""
    events = [
        ConformanceLogged(
            event_id=f"{i}\t{HOSTILE[:20]}", note=HOSTILE, session_id=SessionID(f"s\t{i}\\n")
        )
        for i in range(200)
    ]
    log.append(events)
    entries = log.read()
    assert [e.event_id for e in entries] == [e.event_id for e in events]
    assert {e.data["note"] for e in entries} == {HOSTILE}
    assert [e.session_id for e in entries] == [e.session_id for e in events]


@pytest.mark.requires(EVENT_LOG)
@pytest.mark.parametrize("keep", [0, 1, 7, 50])
def test_trim_keeps_the_newest_entries(log: Any, keep: int) -> None:
    events = [Event() for _ in range(23)]
    for chunk in (events[:10], events[10:]):
        log.append(chunk)
    assert log.trim(keep, batch_size=4) == max(23 - keep, 0)
    assert logged_ids(log.read()) == logged_ids(events[max(23 - keep, 0) :])
