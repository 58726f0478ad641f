"""Chaos: poison events published amid a thousand good ones lose no good event."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.errors import UnstorableEventError
from llmgine_conformance.backends import SqlBackend
from llmgine_conformance.events import ConformancePayload

pytestmark = pytest.mark.slow

GOOD = 1_000


class RaisingZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("no offset")

    def tzname(self, dt: datetime | None) -> str:
        return "RAISING"

    def dst(self, dt: datetime | None) -> None:
        return None


def poisons() -> list[Any]:
    cycle: list[Any] = []
    cycle.append(cycle)
    return [
        10 ** (sys.get_int_max_str_digits() + 1),
        datetime(2030, 1, 1, tzinfo=RaisingZone()),
        cycle,
    ]


async def test_poison_events_amid_a_thousand_good_ones_lose_none(sql_backend: SqlBackend) -> None:
    due = datetime.now(UTC) + timedelta(hours=1)
    good = [ConformancePayload(scheduled_time=due, value=n) for n in range(GOOD)]
    bad = [ConformancePayload(scheduled_time=due, value=value) for value in poisons()]
    order: list[ConformancePayload] = list(good)
    for index, event in enumerate(bad):
        order.insert((index + 1) * GOOD // (len(bad) + 1), event)
    bus = MessageBus(store=sql_backend.open(), publish_timeout=30)
    await bus.start()
    try:
        outcomes = await asyncio.gather(
            *(bus.publish(event) for event in order), return_exceptions=True
        )
    finally:
        await bus.stop()
    refused = [e for e, out in zip(order, outcomes, strict=True) if out is not None]
    assert [e.event_id for e in refused] == [e.event_id for e in bad]
    assert all(
        isinstance(out, UnstorableEventError) and "ConformancePayload.value" in str(out)
        for out in outcomes
        if out is not None
    )
    store = sql_backend.open()
    try:
        restored = {event.event_id for event in store.take_all()}
    finally:
        store.close()
    assert restored == {event.event_id for event in good}  # 0 good events lost
