"""Injected failures: database faults never escape as anything but `StoreUnavailableError`,
never lose or duplicate what a store promised to keep, and never outlast the fault.

Runs on backends that declare FAULTS (the reference store on the fault-injecting
engine of `llmgine_conformance.faults`); the tests that kill connections from
the server side also need DISCONNECT. A fault armed with ``times=1`` fires at
the first statement of its kind; a test whose operation never reaches that
point on the backend at hand skips and says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database.writer import Writer
from llmgine.errors import StoreUnavailableError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance.backends import DISCONNECT, FAULTS, Backend
from llmgine_conformance.faults import KINDS, FaultInjector, Kind, Point
from llmgine_conformance.support import LEASE, OTHER, OWNER, sorted_ids

CAPABILITY = "injected failures"
pytestmark = pytest.mark.requires(FAULTS)

WINDOW = 0.3
"""Seconds an outage lasts: long enough for several retries, short for the suite."""
BUS_STOP_TIMEOUT = 5.0
"""How long the bus may take to stop; every outage here is far shorter."""
KILLED: tuple[Kind, ...] = ("error", "disconnect")


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def injector(backend: Backend) -> Iterator[FaultInjector]:
    """The backend's fault injector, disarmed after the test."""
    assert backend.faults is not None, f"{backend.name} declares {FAULTS} without an injector"
    yield backend.faults
    backend.faults.clear()


def due_events(count: int = 3) -> list[ScheduledEvent]:
    """Events due a minute ago (whole seconds, so every database keeps the instant exactly)."""
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [ScheduledEvent(scheduled_time=due + timedelta(seconds=i)) for i in range(count)]


def later_events(count: int = 3) -> list[ScheduledEvent]:
    """Events due in an hour, so a bus keeps them rather than delivering them."""
    return [
        ScheduledEvent(scheduled_time=datetime.now(UTC) + timedelta(hours=1)) for _ in range(count)
    ]


def ready(backend: Backend, point: Point) -> Any:
    """A store whose next call reaches ``point``: a new one for ``connect`` (it has to open a
    connection), else one that has set up its tables and holds a pooled connection."""
    store = backend.open()
    if point != "connect":
        store.next_due()
    return store


def claim_all(store: Any, owner: str) -> list[ScheduledEvent]:
    """Claim every due event for ``owner``."""
    events: list[ScheduledEvent] = store.claim(
        owner, due_before=datetime.now(UTC), lease=LEASE, limit=100
    )
    return events


def holding(backend: Backend, events: Sequence[ScheduledEvent]) -> None:
    """Store ``events`` and claim them for OWNER, through a store of their own."""
    store = backend.open()
    store.add(events)
    assert sorted_ids(claim_all(store, OWNER)) == sorted_ids(events)


def attempt(call: Callable[[], object]) -> bool:
    """Run ``call``: True if it succeeded, False if it raised `StoreUnavailableError`.

    Any other exception fails the test: it is what the store let escape.
    """
    try:
        call()
    except StoreUnavailableError:
        return False
    except Exception as exc:
        pytest.fail(
            f"raised {type(exc).__module__}.{type(exc).__qualname__} instead of "
            f"StoreUnavailableError: {exc}"
        )
    return True


def expect_fired(injector: FaultInjector, point: Point) -> None:
    """The one armed fault fired, and was recorded once; skip if the call never reached it."""
    fired = injector.count(point, "fail")
    if fired == 0:
        pytest.skip(f"the operation does not reach {point!r} on this backend")
    assert fired == 1, injector.injected


# --- one fault in one store call -------------------------------------------------------------


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "insert", "commit"])
def test_a_failed_add_stores_the_events_exactly_once_when_retried(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    store = ready(backend, point)
    events = due_events()
    injector.fail(point, kind=kind, times=1)
    attempt(lambda: store.add(events))
    expect_fired(injector, point)
    store.add(events)
    assert sorted_ids(store.take_all()) == sorted_ids(events)


@pytest.mark.parametrize("kind", KILLED)
def test_an_add_committed_but_never_acknowledged_is_stored_once_when_retried(
    backend: Backend, injector: FaultInjector, kind: Kind
) -> None:
    store = ready(backend, "commit")
    events = due_events()
    injector.fail("commit", kind=kind, times=1, after=True)
    attempt(lambda: store.add(events))
    expect_fired(injector, "commit")
    store.add(events)
    assert sorted_ids(store.take_all()) == sorted_ids(events)


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "update", "commit"])
def test_a_failed_claim_leaves_the_events_claimable(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    backend.open().add(events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    claimed: list[ScheduledEvent] = []
    attempt(lambda: claimed.extend(claim_all(store, OWNER)))
    expect_fired(injector, point)
    assert sorted_ids(claimed + claim_all(store, OTHER)) == sorted_ids(events)


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "update", "commit"])
def test_a_failed_renew_leaves_the_events_with_their_owner(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    holding(backend, events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    attempt(lambda: store.renew(OWNER, lease=LEASE))
    expect_fired(injector, point)
    assert store.renew(OWNER, lease=LEASE) == set(sorted_ids(events))
    assert claim_all(store, OTHER) == []


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "update", "commit"])
def test_a_failed_release_leaves_the_events_with_their_owner(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    holding(backend, events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    released = attempt(lambda: store.release(OWNER))
    expect_fired(injector, point)
    assert store.renew(OWNER, lease=LEASE) == (set() if released else set(sorted_ids(events)))
    store.release(OWNER)
    assert sorted_ids(claim_all(store, OTHER)) == sorted_ids(events)


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "delete", "commit"])
def test_a_failed_complete_keeps_the_events_stored_and_held(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    holding(backend, events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    completed = attempt(lambda: store.complete(OWNER, sorted_ids(events)))
    expect_fired(injector, point)
    assert store.renew(OWNER, lease=LEASE) == (set() if completed else set(sorted_ids(events)))
    assert store.complete(OWNER, sorted_ids(events)) == (0 if completed else len(events))
    assert store.take_all() == []


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "update", "delete", "commit"])
def test_a_failed_take_all_leaves_every_event_stored(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    backend.open().add(events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    taken: list[ScheduledEvent] = []
    attempt(lambda: taken.extend(store.take_all()))
    expect_fired(injector, point)
    assert sorted_ids(taken + store.take_all()) == sorted_ids(events)


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "select", "commit"])
def test_a_failed_next_due_is_answered_by_the_next_call(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = due_events()
    backend.open().add(events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    attempt(store.next_due)
    expect_fired(injector, point)
    assert store.next_due() == events[0].scheduled_time


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "insert", "commit"])
def test_a_failed_append_logs_each_event_exactly_once_when_retried(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    store = ready(backend, point)
    events = [Event() for _ in range(3)]
    injector.fail(point, kind=kind, times=1)
    attempt(lambda: store.append(events))
    expect_fired(injector, point)
    store.append(events)
    assert [entry.event_id for entry in store.read()] == [event.event_id for event in events]


@pytest.mark.parametrize("kind", KILLED)
def test_an_append_committed_but_never_acknowledged_logs_once_when_retried(
    backend: Backend, injector: FaultInjector, kind: Kind
) -> None:
    store = ready(backend, "commit")
    events = [Event() for _ in range(3)]
    injector.fail("commit", kind=kind, times=1, after=True)
    attempt(lambda: store.append(events))
    expect_fired(injector, "commit")
    store.append(events)
    assert [entry.event_id for entry in store.read()] == [event.event_id for event in events]


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "select", "commit"])
def test_a_failed_read_is_answered_by_the_next_call(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    events = [Event() for _ in range(3)]
    backend.open().append(events)
    store = ready(backend, point)
    injector.fail(point, kind=kind, times=1)
    attempt(store.read)
    expect_fired(injector, point)
    assert [entry.event_id for entry in store.read()] == [event.event_id for event in events]


@pytest.mark.parametrize("kind", KILLED)
@pytest.mark.parametrize("point", ["connect", "ddl", "select", "insert", "commit"])
def test_a_store_whose_setup_failed_sets_up_on_its_next_call(
    backend: Backend, injector: FaultInjector, point: Point, kind: Kind
) -> None:
    store = backend.open()  # nothing created yet: the first call creates the tables
    events = due_events()
    injector.fail(point, kind=kind, times=1)
    attempt(lambda: store.add(events))
    expect_fired(injector, point)
    store.add(events)
    assert sorted_ids(store.take_all()) == sorted_ids(events)


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_that_keeps_failing_makes_every_call_raise_store_unavailable(
    backend: Backend, injector: FaultInjector, kind: Kind
) -> None:
    store = ready(backend, "commit")
    events = due_events()
    injector.fail("commit", kind=kind)
    for call in (lambda: store.add(events), store.take_all, lambda: claim_all(store, OWNER)):
        with pytest.raises(StoreUnavailableError):
            call()
    injector.clear()
    assert store.take_all() == []


# --- the writer: acknowledged means stored, exactly once -------------------------------------


def inserts_fail_for_a_while(injector: FaultInjector) -> Point:
    injector.fail("insert", for_seconds=WINDOW)
    return "insert"


def commits_fail_for_a_while(injector: FaultInjector) -> Point:
    injector.fail("commit", for_seconds=WINDOW)
    return "commit"


def connection_lost_then_unreachable(injector: FaultInjector) -> Point:
    injector.fail("insert", kind="disconnect", times=1)
    injector.fail("connect", for_seconds=WINDOW)
    return "connect"


def five_commits_fail(injector: FaultInjector) -> Point:
    injector.fail("commit", times=5)
    return "commit"


def three_commits_take_effect_unacknowledged(injector: FaultInjector) -> Point:
    injector.fail("commit", kind="disconnect", times=3, after=True)
    return "commit"


OUTAGES = [
    inserts_fail_for_a_while,
    commits_fail_for_a_while,
    connection_lost_then_unreachable,
    five_commits_fail,
    three_commits_take_effect_unacknowledged,
]
"""Ways to make the database fail; each arms its faults and returns the point that must fire."""


@pytest.fixture
def writer(store: Any) -> Iterator[Writer]:
    """A writer with short retry delays over ``store``, which has set up its tables."""
    store.next_due()
    writer = Writer(log=store, scheduled=store, retry_initial=0.01, retry_max=0.05)
    yield writer
    writer.stop(5)


def submit_through(writer: Writer, seconds: float) -> tuple[list[ScheduledEvent], list[Event]]:
    """Submit a scheduled batch and a log entry every few milliseconds for ``seconds``, then
    wait until every batch is acknowledged; return the events acknowledged and those logged."""
    pending: list[tuple[list[ScheduledEvent], Future[None]]] = []
    logged: list[Event] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = due_events(2)
        pending.append((batch, writer.submit_scheduled(batch)))
        entry = Event()
        assert writer.submit_log(entry), "the writer dropped a log entry"
        logged.append(entry)
        time.sleep(0.03)
    acknowledged: list[ScheduledEvent] = []
    for batch, future in pending:
        future.result(timeout=10)
        acknowledged.extend(batch)
    return acknowledged, logged


@pytest.mark.parametrize("outage", OUTAGES, ids=lambda outage: outage.__name__)
def test_the_writer_stores_each_acknowledged_event_exactly_once_across_an_outage(
    store: Any, writer: Writer, injector: FaultInjector, outage: Callable[[FaultInjector], Point]
) -> None:
    point = outage(injector)
    acknowledged, _ = submit_through(writer, WINDOW * 1.5)
    assert injector.count(point, "fail") > 0
    assert sorted_ids(store.take_all()) == sorted_ids(acknowledged)


@pytest.mark.parametrize("outage", OUTAGES[::2], ids=lambda outage: outage.__name__)
def test_the_writer_logs_every_entry_submitted_during_an_outage(
    store: Any, writer: Writer, injector: FaultInjector, outage: Callable[[FaultInjector], Point]
) -> None:
    point = outage(injector)
    _, logged = submit_through(writer, WINDOW * 1.5)
    assert writer.flush(10)
    assert injector.count(point, "fail") > 0
    assert [entry.event_id for entry in store.read()] == [event.event_id for event in logged]


def test_the_writer_counts_each_injected_fault_as_a_retry(
    store: Any, writer: Writer, injector: FaultInjector
) -> None:
    injector.fail("commit", times=5)
    writer.submit_scheduled(due_events(1)).result(timeout=10)
    stats = writer.stats()
    assert stats.retried == injector.count("commit", "fail") == 5
    assert stats.last_error


def test_the_writer_loses_and_duplicates_nothing_under_random_commit_faults(
    store: Any, writer: Writer, injector: FaultInjector
) -> None:
    injector.fail("commit", probability=0.3)
    injector.fail("commit", kind="disconnect", probability=0.2, after=True)
    acknowledged: list[ScheduledEvent] = []
    for _ in range(40):
        batches = [due_events(1) for _ in range(5)]
        futures = [writer.submit_scheduled(batch) for batch in batches]
        for batch, future in zip(batches, futures, strict=True):
            future.result(timeout=10)
            acknowledged.extend(batch)
    assert sum(i.after for i in injector.injected) > 0
    assert sum(not i.after for i in injector.injected) > 0
    injector.clear()
    assert len(acknowledged) == 200
    assert sorted_ids(store.take_all()) == sorted_ids(acknowledged)


# --- the bus: never raises, never loses a scheduled event ------------------------------------


async def left_for_the_next_bus(backend: Backend) -> list[str]:
    """The ids of every stored, claimable event: what the next bus to start restores."""
    taken: list[ScheduledEvent] = await asyncio.to_thread(backend.open().take_all)
    return sorted_ids(taken)


@pytest.mark.asyncio
@pytest.mark.parametrize("outage", OUTAGES, ids=lambda outage: outage.__name__)
async def test_a_bus_run_through_an_outage_leaves_its_scheduled_events_for_the_next(
    backend: Backend, injector: FaultInjector, outage: Callable[[FaultInjector], Point]
) -> None:
    store = backend.open()
    await asyncio.to_thread(store.next_due)
    bus = MessageBus(store=store, event_log=store, stop_timeout=BUS_STOP_TIMEOUT)
    point = outage(injector)
    await bus.start()
    events = later_events()
    for event in events:
        await bus.publish(event)
    await bus.publish(Event())
    await bus.stop()
    assert injector.count(point, "fail") > 0
    assert await left_for_the_next_bus(backend) == sorted_ids(events)


@pytest.mark.asyncio
async def test_a_bus_run_through_an_outage_logs_every_event_it_published(
    backend: Backend, injector: FaultInjector
) -> None:
    store = backend.open()
    bus = MessageBus(store=store, event_log=store, stop_timeout=BUS_STOP_TIMEOUT)
    injector.fail("insert", for_seconds=WINDOW)
    await bus.start()
    events = [Event() for _ in range(5)]
    for event in events:
        await bus.publish(event)
    await bus.stop()
    assert injector.count("insert", "fail") > 0
    logged = await asyncio.to_thread(store.read)
    assert [entry.event_id for entry in logged] == [event.event_id for event in events]


@pytest.mark.asyncio
@pytest.mark.parametrize("point", ["connect", "select", "update", "delete", "commit"])
async def test_a_bus_whose_start_met_a_fault_still_runs_and_loses_nothing(
    backend: Backend, injector: FaultInjector, point: Point
) -> None:
    events = later_events()
    await asyncio.to_thread(backend.open().add, events)
    bus = MessageBus(store=backend.open(), stop_timeout=BUS_STOP_TIMEOUT)
    injector.fail(point, times=1)
    await bus.start()
    delivered: list[Event] = []
    bus.register_event_handler(Event, delivered.append)
    await bus.publish(Event())
    await bus.stop()
    expect_fired(injector, point)
    assert len(delivered) == 1, "the bus should deliver events although its restore failed"
    assert await left_for_the_next_bus(backend) == sorted_ids(events)


# --- latency --------------------------------------------------------------------------------


def test_added_latency_slows_a_call_that_still_succeeds(
    backend: Backend, injector: FaultInjector
) -> None:
    store = ready(backend, "select")
    events = due_events()
    store.add(events)
    injector.delay("select", 0.2, times=1)
    started = time.monotonic()
    assert store.next_due() == events[0].scheduled_time
    assert time.monotonic() - started >= 0.2
    assert [(i.point, i.action, i.kind) for i in injector.injected] == [("select", "delay", None)]


# --- connections killed by the server (PostgreSQL) -------------------------------------------


@pytest.mark.requires(FAULTS, DISCONNECT)
def test_a_store_reconnects_after_the_server_killed_its_idle_connections(
    backend: Backend, injector: FaultInjector
) -> None:
    store = backend.open()
    events = due_events()
    store.add(events)
    assert backend.terminate_connections() > 0
    store.append([Event()])
    assert sorted_ids(store.take_all()) == sorted_ids(events)
    assert injector.injected == []


def kill_during(backend: Backend, injector: FaultInjector, point: Point) -> list[int]:
    """Arm: just before the next ``point``, kill every connection the backend's stores hold.
    Returns the list the number killed is appended to."""
    killed: list[int] = []
    injector.before(point, lambda: killed.append(backend.terminate_connections()))
    return killed


@pytest.mark.requires(FAULTS, DISCONNECT)
@pytest.mark.parametrize("point", ["update", "delete", "commit"])
def test_a_take_all_whose_connection_is_killed_midway_loses_nothing(
    backend: Backend, injector: FaultInjector, point: Point
) -> None:
    events = due_events()
    store = ready(backend, point)
    store.add(events)
    killed = kill_during(backend, injector, point)
    try:
        taken = store.take_all()
    except StoreUnavailableError:
        taken = []
    else:
        if not killed:
            pytest.skip(f"take_all does not reach {point!r} on this backend")
        pytest.fail("take_all returned although its connection was killed")
    assert killed[0] > 0
    assert sorted_ids(taken + store.take_all()) == sorted_ids(events)


@pytest.mark.requires(FAULTS, DISCONNECT)
def test_a_claim_whose_connection_is_killed_midway_leaves_the_events_claimable(
    backend: Backend, injector: FaultInjector
) -> None:
    events = due_events()
    store = ready(backend, "update")
    store.add(events)
    killed = kill_during(backend, injector, "update")
    with pytest.raises(StoreUnavailableError):
        claim_all(store, OWNER)
    assert killed[0] > 0
    assert sorted_ids(claim_all(store, OTHER)) == sorted_ids(events)


@pytest.mark.requires(FAULTS, DISCONNECT)
def test_a_complete_whose_connection_is_killed_midway_deletes_nothing(
    backend: Backend, injector: FaultInjector
) -> None:
    events = due_events()
    holding(backend, events)
    store = ready(backend, "delete")
    killed = kill_during(backend, injector, "delete")
    with pytest.raises(StoreUnavailableError):
        store.complete(OWNER, sorted_ids(events))
    assert killed[0] > 0
    assert store.renew(OWNER, lease=LEASE) == set(sorted_ids(events))
    assert store.complete(OWNER, sorted_ids(events)) == len(events)


@pytest.mark.asyncio
async def test_publish_does_not_wait_for_a_slow_event_log(
    backend: Backend, injector: FaultInjector
) -> None:
    """No database I/O on the event loop: every write one second slower leaves publish fast."""
    bus = MessageBus(store=backend.open(), event_log=backend.open(), stop_timeout=30)
    bus.register_event_handler(Event, lambda _event: None)
    await bus.start()
    injector.delay("insert", 1.0)
    injector.delay("commit", 1.0)
    loop = asyncio.get_running_loop()
    events = [Event() for _ in range(20)]
    slowest = 0.0
    for event in events:
        started = loop.time()
        await bus.publish(event, await_processing=True)
        slowest = max(slowest, loop.time() - started)
    await bus.stop()
    injector.clear()
    assert slowest < 0.5, f"a publish took {slowest:.2f} s: it waited for the database"
    assert injector.count("insert", "delay") >= 1
    assert sorted_ids(backend.open().read()) == sorted_ids(events)
