"""Scheduled events on the bus: on time, in order, storable, surviving restarts; the event log."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from llmgine.bus import MessageBus
from llmgine.database import DatabaseEngine, MemoryStore, api
from llmgine.database import engine as engine_module
from llmgine.database.instants import to_utc, utc_now
from llmgine.errors import UnstorableEventError
from llmgine.messages import Event, ScheduledEvent, SessionID, register_scheduled_event_class
from llmgine_conformance.backends import Backend, MemoryBackend, SqlBackend
from llmgine_conformance.support import process_time_zone

TIMEOUT = 5.0
"""Upper bound for anything that should happen soon; a hang fails instead of blocking."""
EARLY = timedelta(milliseconds=5)
"""Clock granularity allowed when checking that an event did not fire early."""
LATE = timedelta(seconds=3)
"""How late a delivery may be on a loaded machine; this is not a performance bound."""
SOON = timedelta(milliseconds=150)
RESTART_DELAY = timedelta(seconds=1)
"""Due time of events that must outlive a restart and fire on the next bus."""
SETTLE = 0.2
"""How long to watch for a duplicate delivery after the expected ones."""


class BusTestColour(Enum):
    RED = "red"
    BLUE = "blue"


@register_scheduled_event_class
@dataclass(kw_only=True)
class BusTestReminder(ScheduledEvent):
    text: str = ""
    count: int = 0
    amount: Decimal = Decimal("0")
    ref: uuid.UUID = field(default_factory=uuid.uuid4)
    tags: tuple[str, ...] = ()
    colour: BusTestColour = BusTestColour.RED
    remind_at: datetime | None = None


@register_scheduled_event_class
@dataclass(kw_only=True)
class BusTestOpaqueReminder(ScheduledEvent):
    payload: Any = None


@dataclass(kw_only=True)
class BusTestUnregisteredReminder(ScheduledEvent):
    pass


@dataclass(kw_only=True)
class BusTestTrigger(Event):
    pass


class Inbox:
    """An event handler that records each event and the instant it arrived."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.times: list[datetime] = []
        self._arrived = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.times.append(utc_now())
        self._arrived.set()

    def listen(self, bus: MessageBus, *types: type[Event]) -> Inbox:
        for event_type in types or (ScheduledEvent,):
            bus.register_event_handler(event_type, self)
        return self

    async def wait_for(self, count: int) -> None:
        async def arrived() -> None:
            while len(self.events) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(arrived(), TIMEOUT)


def assert_not_early(arrived: datetime, due: datetime) -> None:
    assert arrived >= to_utc(due) - EARLY, f"fired {to_utc(due) - arrived} early"


def assert_on_time(arrived: datetime, due: datetime) -> None:
    assert_not_early(arrived, due)
    assert arrived <= to_utc(due) + LATE, f"fired {arrived - to_utc(due)} late"


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    bus = MessageBus(store=MemoryStore())
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Local time five hours behind UTC, so a naive time read as UTC would be wrong."""
    with process_time_zone("XST+05"):
        yield


# --- on time -------------------------------------------------------------------------


@pytest.mark.usefixtures("far_from_utc")
async def test_an_event_with_a_naive_local_time_fires_at_that_time(bus: MessageBus) -> None:
    inbox = Inbox().listen(bus)
    event = ScheduledEvent(scheduled_time=datetime.now() + SOON)
    await bus.publish(event)
    await inbox.wait_for(1)
    assert inbox.events == [event]
    assert_on_time(inbox.times[0], event.scheduled_time)


async def test_an_event_with_an_aware_time_fires_at_that_time(bus: MessageBus) -> None:
    inbox = Inbox().listen(bus)
    event = ScheduledEvent(scheduled_time=datetime.now(ZoneInfo("Asia/Tokyo")) + SOON)
    await bus.publish(event)
    await inbox.wait_for(1)
    assert inbox.events == [event]
    assert_on_time(inbox.times[0], event.scheduled_time)


async def test_events_fire_in_due_order_whatever_the_publish_order(bus: MessageBus) -> None:
    inbox = Inbox().listen(bus)
    now = datetime.now()
    offsets = [300, 100, 250, 50, 200]
    for ms in offsets:
        await bus.publish(ScheduledEvent(scheduled_time=now + timedelta(milliseconds=ms)))
    await inbox.wait_for(len(offsets))
    due = [e.scheduled_time for e in inbox.events if isinstance(e, ScheduledEvent)]
    assert due == sorted(due)
    for arrived, scheduled in zip(inbox.times, due, strict=True):
        assert_on_time(arrived, scheduled)


async def test_an_event_due_in_the_past_is_delivered_at_once(bus: MessageBus) -> None:
    inbox = Inbox().listen(bus)
    event = ScheduledEvent(scheduled_time=datetime.now() - timedelta(hours=1))
    await asyncio.wait_for(bus.publish(event), TIMEOUT)
    assert inbox.events == [event]


async def test_publishing_a_future_event_returns_at_once_even_awaiting_processing(
    bus: MessageBus,
) -> None:
    inbox = Inbox().listen(bus)
    event = ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))
    await asyncio.wait_for(bus.publish(event, await_processing=True), TIMEOUT)
    assert inbox.events == []


async def test_wait_for_events_does_not_wait_for_future_events(bus: MessageBus) -> None:
    await bus.publish(ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1)))
    await asyncio.wait_for(bus.wait_for_events(), TIMEOUT)


async def test_a_future_event_published_by_a_handler_still_waits_for_its_time(
    bus: MessageBus,
) -> None:
    inbox = Inbox().listen(bus)
    later = ScheduledEvent(scheduled_time=datetime.now() + SOON)

    async def on_trigger(event: Event) -> None:
        await bus.publish(later, await_processing=True)

    bus.register_event_handler(BusTestTrigger, on_trigger)
    await asyncio.wait_for(bus.publish(BusTestTrigger()), TIMEOUT)
    await inbox.wait_for(1)
    assert inbox.events == [later]
    assert_on_time(inbox.times[0], later.scheduled_time)


async def test_a_future_event_published_before_start_fires_at_its_time() -> None:
    bus = MessageBus(store=MemoryStore())
    inbox = Inbox().listen(bus)
    event = ScheduledEvent(scheduled_time=datetime.now() + SOON)
    await bus.publish(event)
    await bus.start()
    try:
        await inbox.wait_for(1)
    finally:
        await bus.stop()
    assert_on_time(inbox.times[0], event.scheduled_time)


async def test_pending_events_arm_one_timer_and_nothing_polls(bus: MessageBus) -> None:
    start = datetime.now(UTC) + timedelta(seconds=30)  # within the horizon: held in memory
    for i in range(1000):
        offset = timedelta(milliseconds=(i * 7919) % 1000)  # shuffled due times
        await bus.publish(ScheduledEvent(scheduled_time=start + offset))
    await wait_until(lambda: bus.scheduled_in_memory == 1000)
    assert bus.scheduler is not None
    timers = bus.scheduler._timers
    handle = timers._handle
    assert isinstance(handle, asyncio.TimerHandle)
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    armed = [
        h
        for h in loop._scheduled  # type: ignore[attr-defined]
        if not h.cancelled() and getattr(h._callback, "__self__", None) is timers
    ]
    assert armed == [handle]
    assert timers._handle is handle, "the timer was re-armed: something polls"
    assert bus._queue is not None
    assert bus._queue.empty()


async def test_events_beyond_the_horizon_stay_in_the_store() -> None:
    store = MemoryStore()
    bus = MessageBus(store=store, horizon=timedelta(minutes=1))
    await bus.start()
    try:
        far = datetime.now(UTC) + timedelta(days=30)
        for i in range(200):
            await bus.publish(ScheduledEvent(scheduled_time=far + timedelta(seconds=i)))
        await asyncio.sleep(0.1)
        assert bus.scheduled_in_memory == 0
        assert store.next_due() == far
    finally:
        await bus.stop()


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- storable or rejected ----------------------------------------------------------------


async def test_an_unregistered_future_event_is_rejected_naming_its_class(
    bus: MessageBus,
) -> None:
    event = BusTestUnregisteredReminder(scheduled_time=datetime.now() + timedelta(hours=1))
    with pytest.raises(UnstorableEventError, match="BusTestUnregisteredReminder"):
        await bus.publish(event)
    assert bus.scheduled_in_memory == 0


async def test_an_unregistered_event_due_now_is_delivered(bus: MessageBus) -> None:
    inbox = Inbox().listen(bus, BusTestUnregisteredReminder)
    event = BusTestUnregisteredReminder(scheduled_time=datetime.now() - timedelta(seconds=1))
    await bus.publish(event)
    assert inbox.events == [event]


async def test_a_future_event_with_an_unstorable_field_is_rejected_naming_the_field(
    bus: MessageBus,
) -> None:
    event = BusTestOpaqueReminder(
        scheduled_time=datetime.now() + timedelta(hours=1), payload=object()
    )
    with pytest.raises(UnstorableEventError, match=r"BusTestOpaqueReminder\.payload"):
        await bus.publish(event)
    assert bus.scheduled_in_memory == 0


async def test_a_rejected_event_is_not_stored_at_stop() -> None:
    store = MemoryStore()
    bus = MessageBus(store=store)
    await bus.start()
    with pytest.raises(UnstorableEventError):
        await bus.publish(
            BusTestOpaqueReminder(
                scheduled_time=datetime.now() + timedelta(hours=1), payload=object()
            )
        )
    await bus.stop()
    assert store.take_all() == []


# --- surviving a restart -------------------------------------------------------------


BusFactory = Callable[[], MessageBus]

RESTART_MODES = [
    pytest.param(("sqlite", "environment"), id="sqlite-environment"),
    pytest.param(("postgres", "environment"), id="postgres-environment"),
    pytest.param(("memory", "store"), id="memory-store"),
    pytest.param(("sqlite", "store"), id="sqlite-store"),
    pytest.param(("postgres", "store"), id="postgres-store"),
]


def _backend(request: pytest.FixtureRequest, name: str) -> Backend:
    if name == "memory":
        return MemoryBackend()
    found: Backend = request.getfixturevalue("sqlite_db" if name == "sqlite" else "postgres_db")
    return found


@pytest.fixture(params=RESTART_MODES)
def make_bus(
    request: pytest.FixtureRequest, use_backend: Callable[[SqlBackend], None]
) -> BusFactory:
    """New buses on one backend: configured by the environment, or each given a new store."""
    name, mode = request.param
    backend = _backend(request, name)
    if mode == "environment":
        assert isinstance(backend, SqlBackend)
        use_backend(backend)
        return MessageBus
    return lambda: MessageBus(store=backend.open())


def reminders(due: datetime) -> list[ScheduledEvent]:
    """A plain scheduled event due at ``due`` and a subclass with every kind of field just after."""
    return [
        ScheduledEvent(scheduled_time=due),
        BusTestReminder(
            scheduled_time=to_utc(due).astimezone(ZoneInfo("Asia/Tokyo"))
            + timedelta(milliseconds=50),
            text="call home",
            count=3,
            amount=Decimal("12.50"),
            tags=("family", "weekly"),
            colour=BusTestColour.BLUE,
            remind_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=ZoneInfo("Europe/Paris")),
            session_id=SessionID("s-restart"),
            metadata={"source": "test", "tries": [1, 2]},
        ),
    ]


async def publish_and_stop(bus: MessageBus, delay: timedelta) -> list[ScheduledEvent]:
    """Start ``bus``, publish `reminders` due ``delay`` from now, stop it; return them.

    Nothing yields to the event loop between publishing and stopping, so the
    events cannot fire on this bus however slow the machine.
    """
    await bus.start()
    events = reminders(datetime.now() + delay)
    for event in events:
        await bus.publish(event)
    await bus.stop()
    return events


async def deliveries_after_start(bus: MessageBus, expected: int) -> Inbox:
    """Start ``bus``, wait for ``expected`` deliveries and a moment more, stop it."""
    inbox = Inbox().listen(bus, ScheduledEvent, BusTestReminder)
    await bus.start()
    try:
        await inbox.wait_for(expected)
        await asyncio.sleep(SETTLE)
    finally:
        await bus.stop()
    return inbox


async def sleep_until(due: datetime) -> None:
    await asyncio.sleep(max((to_utc(due) - utc_now()).total_seconds(), 0.0) + 0.05)


@pytest.mark.usefixtures("far_from_utc")
async def test_scheduled_events_fire_on_the_next_bus_at_their_time(make_bus: BusFactory) -> None:
    events = await publish_and_stop(make_bus(), RESTART_DELAY)
    inbox = await deliveries_after_start(make_bus(), len(events))
    assert inbox.events == events
    for arrived, event in zip(inbox.times, events, strict=True):
        assert_not_early(arrived, event.scheduled_time)


async def test_events_that_fell_due_while_no_bus_ran_fire_once_at_start(
    make_bus: BusFactory,
) -> None:
    events = await publish_and_stop(make_bus(), timedelta(milliseconds=200))
    await sleep_until(events[-1].scheduled_time)
    inbox = await deliveries_after_start(make_bus(), len(events))
    assert inbox.events == events


async def test_a_delivered_event_is_not_restored_again(make_bus: BusFactory) -> None:
    events = await publish_and_stop(make_bus(), timedelta(milliseconds=200))
    await sleep_until(events[-1].scheduled_time)
    await deliveries_after_start(make_bus(), len(events))
    third = make_bus()
    inbox = Inbox().listen(third, ScheduledEvent, BusTestReminder)
    await third.start()
    try:
        assert third.scheduled_in_memory == 0
        await asyncio.sleep(SETTLE)
    finally:
        await third.stop()
    assert inbox.events == []


async def test_a_stopped_bus_restores_its_own_events_when_started_again() -> None:
    bus = MessageBus(store=MemoryStore())
    inbox = Inbox().listen(bus)
    await bus.start()
    event = ScheduledEvent(scheduled_time=datetime.now() + SOON)
    await bus.publish(event)
    await bus.stop()
    await bus.start()
    try:
        await inbox.wait_for(1)
        await asyncio.sleep(SETTLE)
    finally:
        await bus.stop()
    assert inbox.events == [event]


# --- the event log ---------------------------------------------------------------------


async def publish_triggers(bus: MessageBus) -> list[Event]:
    events: list[Event] = [BusTestTrigger(session_id=SessionID("s-log")), BusTestTrigger()]
    await bus.start()
    for event in events:
        await bus.publish(event)
    await bus.stop()
    return events


async def test_the_bus_logs_published_events_when_persist_events_is_on(
    sql_backend: SqlBackend,
    use_backend: Callable[[SqlBackend], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_backend(sql_backend)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    events = await publish_triggers(MessageBus())
    logged = DatabaseEngine.get_store().read()
    assert [(e.event_id, e.event_class_name, e.session_id) for e in logged] == [
        (events[0].event_id, "BusTestTrigger", "s-log"),
        (events[1].event_id, "BusTestTrigger", "BUS"),
    ]


async def test_the_bus_logs_nothing_when_persist_events_is_unset(
    sql_backend: SqlBackend, use_backend: Callable[[SqlBackend], None]
) -> None:
    use_backend(sql_backend)
    await publish_triggers(MessageBus())
    assert DatabaseEngine.get_store().read() == []


async def test_the_bus_logs_to_the_event_log_it_is_given(backend: Backend) -> None:
    store = backend.open()
    events = await publish_triggers(MessageBus(store=store, event_log=store))
    assert [e.event_id for e in store.read()] == [e.event_id for e in events]


async def test_the_bus_logs_nothing_without_an_event_log(backend: Backend) -> None:
    store = backend.open()
    await publish_triggers(MessageBus(store=store))
    assert store.read() == []


def llmgine_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("llmgine")}


async def test_a_stopped_bus_leaves_no_writer_thread_behind() -> None:
    before = llmgine_threads()
    store = MemoryStore()
    bus = MessageBus(store=store, event_log=store)
    await bus.start()
    await bus.publish(BusTestTrigger())
    await bus.publish(ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1)))
    assert llmgine_threads() - before, "the writer should be running while the bus is"
    await bus.stop()
    assert llmgine_threads() - before == set()
    assert len(store.read()) == 2
    assert len(store.take_all()) == 1


# --- best effort -------------------------------------------------------------------------


UNREACHABLE_URL = "postgresql://user:secretpw@127.0.0.1:1/nodb"


async def test_a_bus_without_its_database_still_delivers_and_hides_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", UNREACHABLE_URL)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    monkeypatch.setattr(api, "SAVE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(engine_module, "FLUSH_ON_CHANGE_S", 0.2)
    caplog.set_level(logging.DEBUG)
    bus = MessageBus(stop_timeout=0.2)
    inbox = Inbox().listen(bus, ScheduledEvent, BusTestTrigger)
    await asyncio.wait_for(bus.start(), TIMEOUT)
    trigger = BusTestTrigger()
    soon = ScheduledEvent(scheduled_time=datetime.now() + timedelta(milliseconds=50))
    await bus.publish(trigger)
    await bus.publish(soon)
    await bus.publish(ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1)))
    await inbox.wait_for(2)
    await asyncio.wait_for(bus.stop(), TIMEOUT)
    assert inbox.events == [trigger, soon]
    assert any(r.levelno >= logging.WARNING for r in caplog.records), "the fault went unlogged"
    for record in caplog.records:
        assert "secretpw" not in record.getMessage()
        assert "secretpw" not in (record.exc_text or "")
    assert "secretpw" not in caplog.text
