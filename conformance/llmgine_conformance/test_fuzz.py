"""Hostile events never take a store down: random poison through publish, restart and the log.

Each example publishes, on a bus over the backend, good scheduled events mixed
with scheduled events and plain events that carry hostile values (see
`strategies.hostile_values`: tzinfos that raise or return None, integers past
the digit limit, deep nesting, cycles, lone surrogates, NaN, NUL, large
strings). The process must survive; each publish either returns or raises
`UnstorableEventError` naming the class, none waits past the publish timeout;
after a restart the store gives back exactly the acknowledged scheduled events;
the event log holds every event whose publish returned, or counts it as dropped.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmgine.bus.bus import MessageBus
from llmgine.errors import UnstorableEventError
from llmgine.messages.events import Event
from llmgine_conformance.backends import EVENT_LOG, RESTART, Backend
from llmgine_conformance.events import ConformanceLogged, ConformancePayload
from llmgine_conformance.strategies import Hostile, RaisingZone, hostile_values

CAPABILITY = "hostile events"

pytestmark = pytest.mark.requires(RESTART)

PUBLISH_TIMEOUT = 20.0
FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEN_MB = "x" * 10_000_000


def due() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def mixed(values: list[Any], good: int) -> list[Event]:
    """``good`` plain scheduled events with, between them, a scheduled and a logged event
    carrying each hostile value."""
    events: list[Event] = [ConformancePayload(scheduled_time=due(), value=n) for n in range(good)]
    for index, value in enumerate(values):
        at = (index * 7) % (len(events) + 1)
        events[at:at] = [
            ConformancePayload(scheduled_time=due(), value=value),
            ConformanceLogged(thing=value, metadata={"v": value}),
        ]
    events.append(ConformancePayload(scheduled_time=datetime(2030, 1, 1, tzinfo=RaisingZone())))
    return events


def _plain(value: Any) -> bool:
    return type(value) is int and abs(value) < 2**63


async def publish_all(bus: MessageBus, events: list[Event]) -> list[BaseException | None]:
    async def one(event: Event) -> BaseException | None:
        started = time.monotonic()
        try:
            await bus.publish(event)
        except Exception as exc:
            return exc
        finally:
            assert time.monotonic() - started < PUBLISH_TIMEOUT + 5, "a publish waited too long"
        return None

    return list(await asyncio.gather(*(one(event) for event in events)))


def run(backend: Backend, events: list[Event]) -> None:
    logged = EVENT_LOG in backend.capabilities
    store = backend.open()
    bus = MessageBus(
        store=store, event_log=store if logged else None, publish_timeout=PUBLISH_TIMEOUT
    )

    async def publish() -> tuple[list[BaseException | None], Any]:
        await bus.start()
        try:
            return await publish_all(bus, events), None
        finally:
            await bus.stop()

    outcomes, _ = asyncio.run(publish())
    stats = bus.event_log_stats()
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome is not None:
            assert isinstance(outcome, UnstorableEventError), repr(outcome)
            assert type(event).__qualname__ in str(outcome)
    acknowledged = {
        e.event_id
        for e, outcome in zip(events, outcomes, strict=True)
        if outcome is None and isinstance(e, ConformancePayload)
    }
    good = {e.event_id for e in events if isinstance(e, ConformancePayload) and _plain(e.value)}
    assert good <= acknowledged, "a good event was refused"
    restarted = backend.open()
    try:
        assert {e.event_id for e in restarted.take_all()} == acknowledged
        if logged:
            assert stats is not None
            published = {e.event_id for e, out in zip(events, outcomes, strict=True) if not out}
            in_log = {entry.event_id for entry in restarted.read()} & published
            assert len(in_log) + stats.dropped >= len(published), "a log entry was lost"
    finally:
        restarted.close()
        store.close()


@FUZZ
@given(values=st.lists(hostile_values().map(Hostile), min_size=1, max_size=3))
@example(values=[Hostile(TEN_MB)])
def test_hostile_events_never_crash_nor_cost_another_event(
    backend: Backend, values: list[Hostile]
) -> None:
    run(backend, mixed([hostile.value for hostile in values], good=5))
