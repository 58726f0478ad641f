"""Delivery guarantees under faults: one owner at a time, nothing stranded, the store's clock.

At-least-once delivery with one owner per event: a bus fires an event only
while it knows its lease is valid, never fires twice itself, never keeps a
row it has forgotten, and measures time on the store's clock. Each fault is
made deterministic: a bus's store calls are stalled or failed through hooks
(`Intercepted`) while the database stays healthy, and a process clock is
replaced through ``MessageBus(clock=...)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmgine.database.instants import utc_now
from llmgine.errors import StoreUnavailableError
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance import _buses
from llmgine_conformance._buses import Deliveries, soon, until
from llmgine_conformance.backends import CLOCK, RESTART, Backend

CAPABILITY = "delivery guarantees"

pytestmark = pytest.mark.requires(RESTART)

buses = _buses.buses

LEASE = timedelta(seconds=1)
STALL_LIMIT_S = 20.0
"""The longest a stalled store call waits for its test to let it go."""


def stall_while(stalled: threading.Event, let_go: threading.Event) -> Callable[..., Any]:
    """A hook that holds the call while ``stalled`` is set, until ``let_go``: a frozen process."""

    def hook(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if stalled.is_set():
            let_go.wait(STALL_LIMIT_S)
        return original(*args, **kwargs)

    return hook


def fail_while(failing: threading.Event) -> Callable[..., Any]:
    """A hook that raises `StoreUnavailableError` while ``failing`` is set."""

    def hook(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if failing.is_set():
            raise StoreUnavailableError("injected: the database does not answer")
        return original(*args, **kwargs)

    return hook


@pytest.mark.asyncio
async def test_a_bus_past_its_lease_never_fires_an_event_another_bus_took_over(
    buses: Callable[..., Any],
) -> None:
    stalled, let_go = threading.Event(), threading.Event()
    frozen = buses(lease=LEASE, poll_interval=0.1, hooks={"renew": stall_while(stalled, let_go)})
    frozen_inbox = Deliveries(frozen)
    await frozen.start()
    stalled.set()  # from now on its renewals hang: its lease runs out while it still waits
    event = ScheduledEvent(scheduled_time=soon(2.5))
    await frozen.publish(event)
    await until(lambda: event.event_id in {e.event_id for e in frozen.scheduler.waiting()})

    rival = buses(lease=LEASE, poll_interval=0.1)
    rival_inbox = Deliveries(rival)
    await rival.start()
    await rival_inbox.wait_for(1)  # it took the event over when the lease expired
    await until(lambda: frozen.scheduler.stats.fenced >= 1)  # the frozen bus reached the due time
    let_go.set()
    await until(lambda: frozen.scheduler.stats.lost_leases >= 1)

    assert rival_inbox.ids == [event.event_id]
    assert frozen_inbox.ids == []


@pytest.mark.asyncio
async def test_a_bus_fires_its_own_event_once_a_late_renewal_confirms_the_lease(
    buses: Callable[..., Any],
) -> None:
    stalled, let_go = threading.Event(), threading.Event()
    bus = buses(lease=LEASE, poll_interval=0.1, hooks={"renew": stall_while(stalled, let_go)})
    inbox = Deliveries(bus)
    await bus.start()
    stalled.set()
    event = ScheduledEvent(scheduled_time=soon(2.0))
    await bus.publish(event)
    await until(lambda: bus.scheduler.stats.fenced >= 1)  # due, but its lease is unconfirmed
    assert inbox.ids == []
    stalled.clear()
    let_go.set()  # the renewal answers: nobody else took the event, so it is still ours

    await inbox.wait_for(1)
    assert inbox.ids == [event.event_id]


@pytest.mark.asyncio
async def test_completions_failing_past_the_lease_never_make_a_bus_deliver_again(
    buses: Callable[..., Any], backend: Backend
) -> None:
    failing = threading.Event()
    hooks = {"complete": fail_while(failing), "renew": fail_while(failing)}
    bus = buses(lease=LEASE, poll_interval=0.1, hooks=hooks)
    inbox = Deliveries(bus)
    await bus.start()
    event = ScheduledEvent(scheduled_time=soon(0.3))
    await bus.publish(event)
    failing.set()
    await inbox.wait_for(1)
    # Its lease expires while completion fails; its own claims take the row back.
    await until(lambda: bus.scheduler.stats.claimed >= 2, limit=15)
    failing.clear()
    await until(lambda: bus.scheduler.stats.completed >= 1)

    assert inbox.ids == [event.event_id]
    assert backend.open().next_due() is None


@pytest.mark.asyncio
async def test_an_event_whose_completion_found_another_owner_is_never_delivered_here_again(
    buses: Callable[..., Any], backend: Backend
) -> None:
    """While completion failed the lease ran out; another bus claimed the row and gave it back
    (a claim of its own whose answer was lost), so the row is claimable again. The first bus
    must complete it when it claims it back, not deliver it a second time."""
    handed_back = threading.Event()

    def complete(original: Any, owner: str, event_ids: Any) -> int:
        if handed_back.is_set():
            return int(original(owner, event_ids))
        handed_back.set()
        original.__self__.release(owner, event_ids)  # another owner had it, and let it go
        return 0

    bus = buses(lease=LEASE, poll_interval=0.1, hooks={"complete": complete})
    inbox = Deliveries(bus)
    await bus.start()
    event = ScheduledEvent(scheduled_time=soon(0.3))
    await bus.publish(event)
    await inbox.wait_for(1)
    await until(lambda: bus.scheduler.stats.completed >= 1)

    assert inbox.ids == [event.event_id]
    assert bus.scheduler.stats.claimed == 2
    assert backend.open().next_due() is None


@pytest.mark.asyncio
async def test_an_event_waiting_for_its_lease_and_claimed_again_is_delivered_once(
    buses: Callable[..., Any],
) -> None:
    """Due past its deadline while renewals and claims fail, the event waits for its lease to
    be confirmed; the bus's own claim takes it back first, then a renewal confirms it too."""
    claims_fail, renewals_fail, completions_fail = (threading.Event() for _ in range(3))
    hooks = {
        "claim": fail_while(claims_fail),
        "renew": fail_while(renewals_fail),
        "complete": fail_while(completions_fail),
    }
    bus = buses(lease=LEASE, poll_interval=0.1, hooks=hooks)
    inbox = Deliveries(bus)
    await bus.start()
    event = ScheduledEvent(scheduled_time=soon(1.5))
    await bus.publish(event)
    await until(lambda: bus.scheduler.stats.claimed == 1)
    claims_fail.set()
    renewals_fail.set()
    completions_fail.set()
    await until(lambda: bus.scheduler.stats.fenced >= 1)  # due; its lease has run out
    claims_fail.clear()
    await until(lambda: bus.scheduler.stats.claimed == 2)  # its own claim took it back
    await inbox.wait_for(1)
    renewals_fail.clear()
    await asyncio.sleep(1.5)  # a renewal confirms the lease meanwhile: no second delivery
    completions_fail.clear()
    await until(lambda: bus.scheduler.stats.completed >= 1)

    assert inbox.ids == [event.event_id]


@pytest.mark.asyncio
async def test_a_claim_whose_answer_was_lost_strands_nothing(
    buses: Callable[..., Any],
) -> None:
    lose_answer = threading.Event()

    def claim(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        events = original(*args, **kwargs)
        if events and lose_answer.is_set():
            lose_answer.clear()
            raise StoreUnavailableError("injected: the claim committed, its answer was lost")
        return events

    bus = buses(poll_interval=0.1, hooks={"claim": claim})  # a 30 s lease: expiry is no rescue
    inbox = Deliveries(bus)
    await bus.start()
    lose_answer.set()
    event = ScheduledEvent(scheduled_time=soon(0.5))
    await bus.publish(event)

    await inbox.wait_for(1, limit=8)
    assert inbox.ids == [event.event_id]
    assert bus.scheduler.stats.released_unknown == 1


@pytest.mark.asyncio
async def test_a_renewal_overlapping_a_claim_strands_nothing(
    buses: Callable[..., Any],
) -> None:
    """The renewal reads the leases before the claim commits and answers after it returned:
    its answer lacks the new row, which must not be taken for a lost lease."""
    armed, renewed, claim_answered = threading.Event(), threading.Event(), threading.Event()

    def renew(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        held = original(*args, **kwargs)
        if armed.is_set() and not renewed.is_set():
            renewed.set()
            claim_answered.wait(3)
        return held

    def claim(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not armed.is_set() or renewed.is_set():
            return original(*args, **kwargs)
        renewed.wait(3)  # a renewal runs first (a bus that serializes them times out here)
        events = original(*args, **kwargs)
        threading.Timer(0.3, claim_answered.set).start()
        return events

    bus = buses(
        lease=timedelta(seconds=1.5),
        horizon=timedelta(minutes=5),
        poll_interval=0.1,
        hooks={"renew": renew, "claim": claim},
    )
    inbox = Deliveries(bus)
    await bus.start()
    await bus.publish(ScheduledEvent(scheduled_time=soon(120)))
    await until(lambda: bus.scheduler.stats.claimed == 1)  # held: renewals run
    armed.set()
    event = ScheduledEvent(scheduled_time=soon(4))
    await bus.publish(event)

    await inbox.wait_for(1, limit=12)
    assert inbox.ids == [event.event_id]


@pytest.mark.asyncio
@pytest.mark.parametrize("skew_s", [45.0, -45.0], ids=["ahead", "behind"])
async def test_a_process_clock_off_by_45_s_neither_fires_early_nor_steals_leases(
    buses: Callable[..., Any], skew_s: float
) -> None:
    skewed_clock: Callable[[], datetime] = lambda: utc_now() + timedelta(seconds=skew_s)  # noqa: E731
    honest = buses(lease=timedelta(seconds=3), poll_interval=0.1)
    skewed = buses(lease=timedelta(seconds=3), poll_interval=0.1, clock=skewed_clock)
    inboxes = Deliveries(honest), Deliveries(skewed)
    await honest.start()
    await skewed.start()
    events = [ScheduledEvent(scheduled_time=soon(1.5 + i * 0.1)) for i in range(10)]
    for i, event in enumerate(events):
        await (honest if i % 2 else skewed).publish(event)

    await until(lambda: sum(len(inbox.ids) for inbox in inboxes) >= len(events), limit=15)
    delivered = [(e, at) for inbox in inboxes for e, at in zip(inbox.events, inbox.at, strict=True)]
    assert sorted(e.event_id for e, _ in delivered) == sorted(e.event_id for e in events)
    early = [e.event_id for e, at in delivered if at < e.scheduled_time]
    assert early == []
    late = [e.event_id for e, at in delivered if at > e.scheduled_time + timedelta(seconds=10)]
    assert late == []


@pytest.mark.requires(CLOCK)
def test_the_store_clock_is_the_one_leases_are_measured_on(backend: Backend) -> None:
    instant = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clock = [instant]
    store = backend.open(clock=lambda: clock[0])
    now = store.now()
    assert now == instant
    assert now.utcoffset() == timedelta(0)
    store.add([ScheduledEvent(scheduled_time=instant - timedelta(minutes=1))])
    assert len(store.claim("a", due_before=instant, lease=LEASE, limit=10)) == 1
    clock[0] = instant + LEASE  # the lease ends at exactly now + lease: not yet claimable
    assert store.claim("b", due_before=clock[0], lease=LEASE, limit=10) == []
    clock[0] += timedelta(microseconds=1)
    assert len(store.claim("b", due_before=clock[0], lease=LEASE, limit=10)) == 1


def test_release_of_chosen_ids_gives_up_only_those_the_owner_holds(backend: Backend) -> None:
    store = backend.open()
    due = utc_now() - timedelta(seconds=1)
    events = [ScheduledEvent(scheduled_time=due) for _ in range(4)]
    store.add(events)
    mine = store.claim("me", due_before=utc_now(), lease=timedelta(minutes=5), limit=3)
    theirs = store.claim("them", due_before=utc_now(), lease=timedelta(minutes=5), limit=3)
    assert len(mine) == 3
    assert len(theirs) == 1
    chosen = [mine[0].event_id, theirs[0].event_id, "no-such-event"]

    assert store.release("me", chosen) == 1
    assert store.renew("me", lease=timedelta(minutes=5)) == {e.event_id for e in mine[1:]}
    assert store.renew("them", lease=timedelta(minutes=5)) == {theirs[0].event_id}
    again = store.claim("other", due_before=utc_now(), lease=timedelta(minutes=5), limit=10)
    assert [e.event_id for e in again] == [mine[0].event_id]
