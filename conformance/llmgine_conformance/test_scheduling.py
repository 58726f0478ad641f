"""Durable scheduling through the bus: write-through, leases, release, misfires, re-registration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.messages.events import ScheduledEventMissed
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance import _buses
from llmgine_conformance._buses import Deliveries, soon, until
from llmgine_conformance.backends import EVENT_LOG, FAULTS, RESTART, Backend

CAPABILITY = "durable scheduling"

pytestmark = [pytest.mark.asyncio, pytest.mark.requires(RESTART)]


buses = _buses.buses


async def test_publish_returns_once_the_event_is_stored(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    bus = buses()
    await bus.start()
    event = ScheduledEvent(scheduled_time=soon(3600))
    await bus.publish(event)
    assert backend.open().next_due() == event.scheduled_time


async def test_events_beyond_the_horizon_are_not_held_in_memory(
    buses: Callable[..., MessageBus],
) -> None:
    bus = buses(horizon=timedelta(seconds=60))
    await bus.start()
    for i in range(50):
        await bus.publish(ScheduledEvent(scheduled_time=soon(3600 + i)))
    await bus.publish(near := ScheduledEvent(scheduled_time=soon(30)))
    await until(lambda: bus.scheduled_in_memory == 1)
    assert near.event_id in {e.event_id for e in _waiting(bus)}


def _waiting(bus: MessageBus) -> list[ScheduledEvent]:
    assert bus.scheduler is not None
    return list(bus.scheduler._waiting.values())


async def test_a_stopped_bus_hands_its_events_to_the_next_at_once(
    buses: Callable[..., MessageBus],
) -> None:
    first = buses(lease=timedelta(minutes=10))
    await first.start()
    event = ScheduledEvent(scheduled_time=soon(0.5))
    await first.publish(event)
    await until(lambda: first.scheduled_in_memory == 1)  # claimed, under a 10-minute lease
    await first.stop()
    second = buses()
    inbox = Deliveries(second)
    await second.start()
    await inbox.wait_for(1, limit=5)  # long before the lease would have expired
    assert inbox.ids == [event.event_id]


async def test_a_living_bus_keeps_its_events_by_renewing_the_lease(
    buses: Callable[..., MessageBus],
) -> None:
    # Renewed every 0.27 s: a renewal may come half a second late on a busy machine.
    holder = buses(lease=timedelta(seconds=0.8))
    rival = buses(lease=timedelta(seconds=0.8), poll_interval=0.05)
    held, stolen = Deliveries(holder), Deliveries(rival)
    await holder.start()
    event = ScheduledEvent(scheduled_time=soon(2.5))  # the lease runs out three times over
    await holder.publish(event)
    await until(lambda: holder.scheduled_in_memory == 1)
    await rival.start()
    await held.wait_for(1)
    await asyncio.sleep(0.5)
    assert held.ids == [event.event_id]
    assert stolen.ids == []


async def test_a_delivered_event_is_completed(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    bus = buses()
    inbox = Deliveries(bus)
    await bus.start()
    await bus.publish(ScheduledEvent(scheduled_time=soon(0.2)))
    await inbox.wait_for(1)
    await until(lambda: bus.scheduler is not None and bus.scheduler.stats.completed == 1)
    assert backend.open().take_all() == []


async def test_publishing_the_same_event_again_keeps_one_row_and_the_first_due_time(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    first_due = soon(86_400)
    for due in (first_due, first_due + timedelta(days=1)):  # the startup code, run twice
        bus = buses()
        await bus.start()
        await bus.publish(ScheduledEvent(event_id="nightly-report", scheduled_time=due))
        await bus.stop()
    stored = backend.open().take_all()
    assert [(e.event_id, e.scheduled_time) for e in stored] == [("nightly-report", first_due)]


async def test_an_event_that_fell_due_while_no_bus_ran_fires_once(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    missed_by_minutes = ScheduledEvent(scheduled_time=soon(-300))
    backend.open().add([missed_by_minutes])
    bus = buses()
    inbox = Deliveries(bus)
    await bus.start()
    await inbox.wait_for(1)
    await asyncio.sleep(0.3)
    assert inbox.ids == [missed_by_minutes.event_id]


async def test_an_event_later_than_the_misfire_grace_is_dropped_and_reported(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    late = ScheduledEvent(scheduled_time=soon(-5))
    backend.open().add([late])
    bus = buses(misfire_grace=timedelta(seconds=1))
    inbox = Deliveries(bus, ScheduledEvent, ScheduledEventMissed)
    await bus.start()
    await inbox.wait_for(1)
    await asyncio.sleep(0.3)
    [report] = inbox.events
    assert isinstance(report, ScheduledEventMissed)
    assert report.missed == late
    assert report.late_by > timedelta(seconds=5)
    assert bus.scheduler is not None
    assert bus.scheduler.stats.missed == 1
    await bus.stop()
    assert backend.open().take_all() == []


async def test_an_event_within_the_misfire_grace_is_delivered(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    slightly_late = ScheduledEvent(scheduled_time=soon(-1))
    backend.open().add([slightly_late])
    bus = buses(misfire_grace=timedelta(minutes=1))
    inbox = Deliveries(bus, ScheduledEvent, ScheduledEventMissed)
    await bus.start()
    await inbox.wait_for(1)
    assert inbox.events == [slightly_late]


@pytest.mark.requires(EVENT_LOG)
async def test_a_dropped_event_is_written_to_the_event_log(backend: Backend) -> None:
    backend.open().add([ScheduledEvent(scheduled_time=soon(-5))])
    log = backend.open()
    bus = MessageBus(store=backend.open(), event_log=log, misfire_grace=timedelta(seconds=1))
    await bus.start()
    await until(lambda: bus.scheduler is not None and bus.scheduler.stats.missed == 1)
    await bus.stop()
    assert [e.event_class_name for e in log.read()] == ["ScheduledEventMissed"]


@pytest.mark.requires(FAULTS)
async def test_during_an_outage_publish_returns_and_the_event_fires_from_memory(
    backend: Backend, buses: Callable[..., MessageBus]
) -> None:
    assert backend.faults is not None
    bus = buses(publish_timeout=0.1)
    inbox = Deliveries(bus)
    await bus.start()
    backend.faults.fail("insert", for_seconds=1.5)
    event = ScheduledEvent(scheduled_time=soon(0.5))
    await asyncio.wait_for(bus.publish(event), 1.0)  # returns while inserts still fail
    await inbox.wait_for(1)
    assert inbox.ids == [event.event_id]
    # Once the outage ends the row is written, claimed, and completed without a second delivery.
    await until(lambda: bus.scheduler is not None and bus.scheduler.stats.completed == 1, 10)
    assert inbox.ids == [event.event_id]
    assert backend.open().take_all() == []
