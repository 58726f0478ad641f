"""Leases and fencing: what claim, renew, release, complete and a re-add do to whose events.

Every owner-taking method is tried against an event in each state it can be
in: held by the caller, unowned, held by another owner, held by another owner
after the caller's lease ran out (the caller is stale), quarantined, and held
by the caller past its lease with no one having taken it over. Time comes
from a clock the test moves, so boundaries are checked to the microsecond:
a lease lasts until exactly now + lease, renew counts from now (not from the
old expiry), and ``due_before`` is inclusive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from llmgine.database.codec import dumps, encode_event
from llmgine_conformance.backends import CLOCK, RAW_ROWS, Backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import LEASE, OTHER, OWNER, FakeClock, ids

CAPABILITY = "leases and fencing"

pytestmark = pytest.mark.requires(CLOCK)

THIRD = "owner-c"
TICK = timedelta(microseconds=1)
SHORT = timedelta(seconds=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> Any:
    """A store on ``backend`` that reads the time from ``clock``."""
    return backend.open(clock=clock)


def due_now(clock: FakeClock, count: int = 1) -> list[ConformanceReminder]:
    return [ConformanceReminder(scheduled_time=clock.now, count=i) for i in range(count)]


def claim(
    store: Any, clock: FakeClock, owner: str, lease: timedelta = LEASE, limit: int = 100
) -> list[str]:
    return ids(store.claim(owner, due_before=clock.now, lease=lease, limit=limit))


def quarantine(backend: Backend, store: Any, clock: FakeClock) -> str:
    """Plant a row of an unknown class, due now, and let a claim quarantine it; its id."""
    event_id = f"poison-{uuid.uuid4()}"
    backend.insert_raw(
        event_id=event_id,
        event_class_name="NoSuchConformanceEvent",
        event_data=dumps(encode_event(ConformanceReminder())),
        due=clock.now,
    )
    assert claim(store, clock, THIRD) == []
    assert [row.event_id for row in store.quarantined()] == [event_id]
    return event_id


# --- claim -------------------------------------------------------------------------------


def test_claim_owns_an_event_until_exactly_now_plus_the_lease(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    assert claim(store, clock, OWNER, SHORT) == [event.event_id]
    clock.advance(SHORT)
    assert claim(store, clock, OTHER) == []
    clock.advance(TICK)
    assert claim(store, clock, OTHER) == [event.event_id]


def test_take_all_and_next_due_see_a_lease_end_exactly_as_claim_does(
    store: Any, clock: FakeClock
) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT)
    assert store.next_due() is None
    assert store.take_all() == []
    clock.advance(TICK)
    assert store.next_due() == event.scheduled_time
    assert store.take_all() == [event]


def test_claim_counts_the_lease_from_its_own_now_not_the_due_time(
    store: Any, clock: FakeClock
) -> None:
    event = ConformanceReminder(scheduled_time=clock.now - timedelta(hours=1))
    store.add([event])
    assert claim(store, clock, OWNER, SHORT) == [event.event_id]
    clock.advance(SHORT - TICK)
    assert claim(store, clock, OTHER) == []


def test_due_before_is_inclusive_to_the_microsecond(store: Any, clock: FakeClock) -> None:
    at, after = (ConformanceReminder(scheduled_time=clock.now + d) for d in (TICK, 2 * TICK))
    store.add([after, at])
    cutoff = clock.now + TICK
    assert ids(store.claim(OWNER, due_before=cutoff, lease=LEASE, limit=10)) == [at.event_id]
    assert store.claim(OWNER, due_before=cutoff, lease=LEASE, limit=10) == []


def test_an_owner_does_not_claim_its_own_event_twice(store: Any, clock: FakeClock) -> None:
    store.add(due_now(clock, 3))
    assert len(claim(store, clock, OWNER)) == 3
    assert claim(store, clock, OWNER) == []


def test_claim_skips_events_another_owner_holds(store: Any, clock: FakeClock) -> None:
    held = due_now(clock, 3)
    store.add(held)
    claim(store, clock, OTHER)
    free = due_now(clock, 2)
    store.add(free)
    assert claim(store, clock, OWNER) == ids(free)


@pytest.mark.requires(RAW_ROWS)
def test_claim_never_takes_a_quarantined_row(
    backend: Backend, store: Any, clock: FakeClock
) -> None:
    quarantine(backend, store, clock)
    clock.advance(LEASE * 2)
    assert claim(store, clock, OWNER) == []
    assert store.take_all() == []


def test_claim_takes_over_expired_leases_of_several_owners(store: Any, clock: FakeClock) -> None:
    first, second = due_now(clock, 2)
    store.add([first])
    claim(store, clock, OWNER, SHORT)
    store.add([second])
    clock.advance(timedelta(seconds=10))
    claim(store, clock, OTHER, SHORT)
    clock.advance(SHORT - timedelta(seconds=10) + TICK)  # OWNER's lease ran out, OTHER's not
    assert claim(store, clock, THIRD) == [first.event_id]
    clock.advance(timedelta(seconds=10))
    assert claim(store, clock, THIRD) == [second.event_id]


# --- claim order under a limit -------------------------------------------------------------


def test_a_limited_claim_takes_equal_due_times_in_insertion_order_not_id_order(
    store: Any, clock: FakeClock
) -> None:
    names = ["m", "c", "x", "a", "q", "b", "z", "k"]  # added in this order, not sorted
    events = [
        ConformanceReminder(event_id=f"{n}-{uuid.uuid4()}", scheduled_time=clock.now) for n in names
    ]
    for event in events[:4]:
        store.add([event])
    store.add(events[4:])
    taken = claim(store, clock, OWNER, limit=3) + claim(store, clock, OTHER, limit=3)
    assert taken + claim(store, clock, THIRD, limit=3) == ids(events)


def test_a_limited_claim_takes_the_earliest_of_a_shuffled_backlog(
    store: Any, clock: FakeClock
) -> None:
    dues = [clock.now - timedelta(seconds=s) for s in (5, 60, 5, 30, 60, 5, 30, 60, 30, 5, 1, 60)]
    events = [ConformanceReminder(scheduled_time=due, count=i) for i, due in enumerate(dues)]
    store.add(events[:6])
    store.add(events[6:])
    expected = ids(sorted(events, key=lambda e: e.scheduled_time))  # stable: insertion breaks ties
    rounds = [claim(store, clock, owner, limit=5) for owner in (OWNER, OTHER, THIRD)]
    assert [len(r) for r in rounds] == [5, 5, 2]
    assert [i for r in rounds for i in r] == expected


def test_a_limited_claim_leaves_the_rest_for_the_next(store: Any, clock: FakeClock) -> None:
    events = due_now(clock, 7)
    store.add(events)
    assert claim(store, clock, OWNER, limit=4) == ids(events[:4])
    assert store.renew(OWNER, lease=LEASE) == set(ids(events[:4]))
    assert store.next_due() == clock.now


# --- renew ---------------------------------------------------------------------------------


def test_renew_extends_from_now_not_from_the_old_expiry(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(timedelta(seconds=20))
    assert store.renew(OWNER, lease=SHORT) == {event.event_id}
    clock.advance(SHORT)  # 50 s after the claim: held until exactly now
    assert claim(store, clock, OTHER) == []
    clock.advance(TICK)
    assert claim(store, clock, OTHER) == [event.event_id]


def test_renew_with_a_shorter_lease_shortens_it(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, LEASE)
    store.renew(OWNER, lease=SHORT)
    clock.advance(SHORT + TICK)
    assert claim(store, clock, OTHER) == [event.event_id]


def test_renew_returns_every_id_the_owner_holds_and_no_other(store: Any, clock: FakeClock) -> None:
    mine, theirs, free = due_now(clock, 5), due_now(clock, 3), due_now(clock, 2)
    store.add(mine)
    claim(store, clock, OWNER)
    store.add(theirs)
    claim(store, clock, OTHER)
    store.add(free)
    assert store.renew(OWNER, lease=LEASE) == set(ids(mine))
    assert store.renew(OTHER, lease=LEASE) == set(ids(theirs))
    assert claim(store, clock, THIRD) == ids(free)


def test_renew_of_an_owner_holding_nothing_returns_nothing(store: Any, clock: FakeClock) -> None:
    store.add(due_now(clock, 2))
    assert store.renew(OWNER, lease=LEASE) == set()
    assert len(claim(store, clock, OTHER)) == 2


# --- release -------------------------------------------------------------------------------


def test_release_counts_only_the_owners_events(store: Any, clock: FakeClock) -> None:
    mine, theirs = due_now(clock, 4), due_now(clock, 3)
    store.add(mine)
    claim(store, clock, OWNER)
    store.add(theirs)
    claim(store, clock, OTHER)
    store.add(due_now(clock, 2))
    assert store.release(OWNER) == 4
    assert store.release(OWNER) == 0
    assert store.renew(OTHER, lease=LEASE) == set(ids(theirs))


def test_released_events_are_claimable_at_the_same_instant(store: Any, clock: FakeClock) -> None:
    events = due_now(clock, 3)
    store.add(events)
    claim(store, clock, OWNER)
    store.release(OWNER)
    assert store.next_due() == clock.now
    assert claim(store, clock, OTHER) == ids(events)


# --- complete ------------------------------------------------------------------------------


def test_complete_deletes_exactly_the_owners_given_events(store: Any, clock: FakeClock) -> None:
    mine, theirs = due_now(clock, 4), due_now(clock, 2)
    store.add(mine)
    claim(store, clock, OWNER)
    store.add(theirs)
    claim(store, clock, OTHER)
    free = due_now(clock, 1)
    store.add(free)
    asked = [*ids(mine[:3]), mine[0].event_id, *ids(theirs), *ids(free), "no-such-event"]
    assert store.complete(OWNER, asked) == 3
    assert store.renew(OWNER, lease=LEASE) == {mine[3].event_id}
    assert store.renew(OTHER, lease=LEASE) == set(ids(theirs))
    assert claim(store, clock, THIRD) == ids(free)


def test_complete_of_nothing_deletes_nothing(store: Any, clock: FakeClock) -> None:
    events = due_now(clock, 2)
    store.add(events)
    claim(store, clock, OWNER)
    assert store.complete(OWNER, []) == 0
    assert store.renew(OWNER, lease=LEASE) == set(ids(events))


def test_owner_methods_count_every_event_of_a_large_claim(store: Any, clock: FakeClock) -> None:
    """More events than a store may list in one statement (the SQL store lists 500)."""
    events = due_now(clock, 1234)
    store.add(events)
    assert len(claim(store, clock, OWNER, limit=2000)) == 1234
    assert store.renew(OWNER, lease=LEASE) == set(ids(events))
    assert store.complete(OWNER, ids(events[:1100])) == 1100
    assert store.release(OWNER) == 134


# --- fencing: each owner-taking method against each state of an event ---------------------

Acted = Callable[[Any, str], bool]
"""Calls one owner-taking method as OWNER on the event; True if it acted on it."""


def _renew(store: Any, event_id: str) -> bool:
    return event_id in store.renew(OWNER, lease=2 * LEASE)


def _release(store: Any, event_id: str) -> bool:
    released: int = store.release(OWNER)
    assert released in (0, 1)
    return released == 1


def _complete(store: Any, event_id: str) -> bool:
    completed: int = store.complete(OWNER, [event_id])
    assert completed in (0, 1)
    return completed == 1


METHODS = [
    pytest.param(_renew, id="renew"),
    pytest.param(_release, id="release"),
    pytest.param(_complete, id="complete"),
]


@pytest.mark.parametrize("method", METHODS)
def test_an_owner_method_leaves_an_unowned_event_alone(
    store: Any, clock: FakeClock, method: Acted
) -> None:
    [event] = due_now(clock)
    store.add([event])
    assert not method(store, event.event_id)
    assert claim(store, clock, OTHER) == [event.event_id]


@pytest.mark.parametrize("method", METHODS)
def test_an_owner_method_leaves_another_owners_event_and_lease_alone(
    store: Any, clock: FakeClock, method: Acted
) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OTHER, SHORT)
    assert not method(store, event.event_id)
    clock.advance(SHORT)
    assert claim(store, clock, THIRD) == []  # still held: not released, not completed
    clock.advance(TICK)
    assert claim(store, clock, THIRD) == [event.event_id]  # and its lease not extended


@pytest.mark.parametrize("method", METHODS)
def test_a_stale_owner_whose_event_was_taken_over_changes_nothing(
    store: Any, clock: FakeClock, method: Acted
) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + TICK)
    assert claim(store, clock, OTHER, SHORT) == [event.event_id]
    assert not method(store, event.event_id)
    clock.advance(SHORT)
    assert claim(store, clock, THIRD) == []
    assert store.renew(OWNER, lease=LEASE) == set()
    clock.advance(TICK)
    assert claim(store, clock, THIRD) == [event.event_id]


@pytest.mark.requires(RAW_ROWS)
@pytest.mark.parametrize("method", METHODS)
def test_an_owner_method_leaves_a_quarantined_row_alone(
    backend: Backend, store: Any, clock: FakeClock, method: Acted
) -> None:
    event_id = quarantine(backend, store, clock)
    [row] = store.quarantined()
    assert not method(store, event_id)
    assert store.quarantined() == [row]
    assert claim(store, clock, OTHER) == []


@pytest.mark.parametrize("method", METHODS)
def test_an_owner_past_its_lease_still_holds_what_no_one_took_over(
    store: Any, clock: FakeClock, method: Acted
) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + TICK)
    assert method(store, event.event_id)


def test_renew_past_the_lease_holds_the_event_again_from_now(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + SHORT)
    assert store.renew(OWNER, lease=SHORT) == {event.event_id}
    clock.advance(SHORT)
    assert claim(store, clock, OTHER) == []
    clock.advance(TICK)
    assert claim(store, clock, OTHER) == [event.event_id]


def test_release_past_the_lease_frees_the_event(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + TICK)
    assert store.release(OWNER) == 1
    assert store.renew(OWNER, lease=LEASE) == set()
    assert claim(store, clock, OTHER) == [event.event_id]


def test_complete_past_the_lease_deletes_the_event(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + TICK)
    assert store.complete(OWNER, [event.event_id]) == 1
    assert claim(store, clock, OTHER) == []
    assert store.take_all() == []


# --- re-adding an event that is already stored -------------------------------------------


def test_re_adding_a_claimed_event_keeps_its_owner_and_lease(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    store.add(
        [event, ConformanceReminder(event_id=event.event_id, scheduled_time=clock.now - SHORT)]
    )
    assert claim(store, clock, OTHER) == []
    assert store.renew(OWNER, lease=SHORT) == {event.event_id}
    clock.advance(SHORT + TICK)
    assert claim(store, clock, OTHER) == [event.event_id]


def test_re_adding_a_taken_over_event_keeps_the_new_owner(store: Any, clock: FakeClock) -> None:
    [event] = due_now(clock)
    store.add([event])
    claim(store, clock, OWNER, SHORT)
    clock.advance(SHORT + TICK)
    claim(store, clock, OTHER)
    store.add([event])
    assert store.renew(OWNER, lease=LEASE) == set()
    assert store.renew(OTHER, lease=LEASE) == {event.event_id}


@pytest.mark.requires(RAW_ROWS)
def test_re_adding_a_quarantined_event_leaves_it_quarantined(
    backend: Backend, store: Any, clock: FakeClock
) -> None:
    event_id = quarantine(backend, store, clock)
    [row] = store.quarantined()
    store.add([ConformanceReminder(event_id=event_id, scheduled_time=clock.now)])
    assert store.quarantined() == [row]
    assert claim(store, clock, OWNER) == []
    assert store.take_all() == []


def test_re_adding_a_batch_of_stored_events_adds_only_the_new_ones(
    store: Any, clock: FakeClock
) -> None:
    old = due_now(clock, 4)
    store.add(old)
    claim(store, clock, OWNER, limit=2)
    new = due_now(clock, 3)
    store.add([*old, *new, *old])
    assert claim(store, clock, OTHER) == ids(old[2:] + new)
    assert store.renew(OWNER, lease=LEASE) == set(ids(old[:2]))
