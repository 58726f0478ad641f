"""A row that cannot be restored is quarantined with a reason, never deleted, never fatal.

Rows are planted with `Backend.insert_raw`, bypassing the codec: an unknown
class, a tag no codec knows, a missing required field, a payload that is not
an object, and (where the database accepts it) text that is not JSON. The
store must keep each one, say why, log it, skip it from then on, and restore
every other row as usual.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmgine.database.codec import dumps, encode_event, loads
from llmgine_conformance.backends import RAW_ROWS, RESTART, Backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import LEASE

CAPABILITY = "poison rows"

pytestmark = pytest.mark.requires(RAW_ROWS)

VALID = dumps(encode_event(ConformanceReminder(text="valid for its class")))


@dataclass(frozen=True)
class Poison:
    event_class_name: str
    event_data: str


POISONS = {
    "unknown-class": Poison("NoSuchConformanceEvent", VALID),
    "unknown-tag": Poison(
        "ConformanceReminder", dumps({"scheduled_time": {"$type": "no-such-tag", "v": 1}})
    ),
    "missing-required-field": Poison("ConformanceRequired", dumps({"event_id": "x"})),
    "not-an-object": Poison("ConformanceReminder", "[1, 2, 3]"),
    "bad-field-value": Poison("ConformanceReminder", dumps({"count": {"$type": "uuid", "v": "?"}})),
}
NOT_JSON = Poison("ConformanceReminder", '{"text": "cut off')


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def plant(backend: Backend, poison: Poison, due: datetime | None = None) -> str:
    """Insert ``poison`` as a row due at ``due`` (default an hour ago); return its event_id.

    Skips for text that is not JSON where the backend refuses to hold it (a
    PostgreSQL JSON column checks what it is given).
    """
    event_id = f"poison-{uuid.uuid4()}"
    try:
        backend.insert_raw(
            event_id=event_id,
            event_class_name=poison.event_class_name,
            event_data=poison.event_data,
            due=an_hour_ago() if due is None else due,
        )
    except Exception as exc:
        if poison is not NOT_JSON:
            raise
        pytest.skip(f"{backend.name} cannot hold text that is not JSON: {type(exc).__name__}")
    return event_id


@pytest.fixture(params=[*POISONS.values(), NOT_JSON], ids=[*POISONS, "not-json"])
def poison(request: pytest.FixtureRequest) -> Poison:
    """Each kind of row that cannot be restored."""
    chosen: Poison = request.param
    return chosen


def quarantined_ids(store: Any) -> list[str]:
    return [row.event_id for row in store.quarantined()]


def test_take_all_quarantines_it_and_restores_the_rest(backend: Backend, poison: Poison) -> None:
    store = backend.open()
    early = ConformanceReminder(scheduled_time=an_hour_ago() - timedelta(minutes=1))
    late = ConformanceReminder(scheduled_time=datetime.now(UTC))
    store.add([early])
    bad_id = plant(backend, poison)
    store.add([late])
    assert store.take_all() == [early, late]
    [row] = store.quarantined()
    assert (row.event_id, row.event_class_name) == (bad_id, poison.event_class_name)
    assert row.reason


def test_claim_quarantines_it_and_claims_the_rest(backend: Backend, poison: Poison) -> None:
    store = backend.open()
    good = ConformanceReminder(scheduled_time=datetime.now(UTC))
    bad_id = plant(backend, poison)
    store.add([good])
    assert store.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=10) == [good]
    assert quarantined_ids(store) == [bad_id]


def test_the_quarantined_row_keeps_its_data(backend: Backend, poison: Poison) -> None:
    store = backend.open()
    plant(backend, poison)
    store.take_all()
    [row] = store.quarantined()
    if poison is NOT_JSON:
        assert row.event_data == poison.event_data
    else:
        assert loads(row.event_data) == loads(poison.event_data)


def test_the_quarantined_row_is_skipped_from_then_on(backend: Backend, poison: Poison) -> None:
    store = backend.open()
    plant(backend, poison)
    store.take_all()
    good = ConformanceReminder(scheduled_time=datetime.now(UTC) + timedelta(minutes=1))
    store.add([good])
    assert store.next_due() == good.scheduled_time
    assert store.claim("a", due_before=an_hour_ago(), lease=LEASE, limit=10) == []
    assert store.take_all() == [good]
    assert store.take_all() == []


@pytest.mark.requires(RESTART)
def test_the_quarantined_row_is_never_deleted(backend: Backend, poison: Poison) -> None:
    store = backend.open()
    bad_id = plant(backend, poison)
    store.take_all()
    store.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=10)
    store.take_all()
    store.close()
    assert quarantined_ids(backend.open()) == [bad_id]


def test_quarantine_is_logged_once_with_the_event_id(
    backend: Backend, poison: Poison, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.open()
    bad_id = plant(backend, poison)
    with caplog.at_level(logging.WARNING):
        store.take_all()
        store.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=10)
        store.take_all()
    mentions = [r for r in caplog.records if bad_id in r.getMessage()]
    assert len(mentions) == 1
    assert mentions[0].levelno >= logging.WARNING
    [row] = store.quarantined()
    assert row.reason in mentions[0].getMessage()


def test_the_reason_says_why_the_row_cannot_be_restored(backend: Backend) -> None:
    store = backend.open()
    unknown = plant(backend, POISONS["unknown-class"])
    bad_tag = plant(backend, POISONS["unknown-tag"])
    store.take_all()
    reasons = {row.event_id: row.reason for row in store.quarantined()}
    assert "NoSuchConformanceEvent" in reasons[unknown]
    assert "no-such-tag" in reasons[bad_tag]


def test_several_quarantined_rows_are_listed_in_insertion_order_each_with_its_reason(
    backend: Backend,
) -> None:
    store = backend.open()
    first_due = an_hour_ago()  # each row planted due earlier than the one before
    planted = {
        plant(backend, poison, first_due - timedelta(minutes=i)): poison
        for i, poison in enumerate(POISONS.values())
    }
    good = ConformanceReminder(scheduled_time=an_hour_ago())
    store.add([good])
    assert store.take_all() == [good]
    rows = store.quarantined()
    assert [row.event_id for row in rows] == list(planted)
    for row in rows:
        assert row.event_class_name == planted[row.event_id].event_class_name
        assert loads(row.event_data) == loads(planted[row.event_id].event_data)
        assert row.reason


def test_a_limited_claim_reaches_past_a_backlog_of_poison_rows(backend: Backend) -> None:
    store = backend.open()
    for poison in POISONS.values():
        plant(backend, poison)
    good = [
        ConformanceReminder(scheduled_time=datetime.now(UTC) - timedelta(seconds=s))
        for s in (2, 1, 0)
    ]
    store.add(good)
    assert store.claim("a", due_before=datetime.now(UTC), lease=LEASE, limit=2) == good[:2]
    assert len(store.quarantined()) == len(POISONS)
    assert store.claim("b", due_before=datetime.now(UTC), lease=LEASE, limit=2) == good[2:]
