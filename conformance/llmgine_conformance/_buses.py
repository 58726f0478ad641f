"""Buses for the suite's bus-level tests: what each delivered and when, on one backend."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio

from llmgine.bus.bus import MessageBus
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance.backends import Backend


class Deliveries:
    """What a bus delivered, and when."""

    def __init__(self, bus: MessageBus, *types: type[Any]) -> None:
        self.events: list[Any] = []
        self.at: list[datetime] = []
        for event_type in types or (ScheduledEvent,):
            bus.register_event_handler(event_type, self._record)

    def _record(self, event: Any) -> None:
        self.events.append(event)
        self.at.append(datetime.now(UTC))

    @property
    def ids(self) -> list[str]:
        return [event.event_id for event in self.events]

    async def wait_for(self, count: int, limit: float = 10.0) -> None:
        await until(lambda: len(self.events) >= count, limit)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def buses(backend: Backend) -> AsyncIterator[Callable[..., MessageBus]]:
    """Buses on ``backend``, each with a store of its own; all stopped at the end."""
    made: list[MessageBus] = []

    def make(*, hooks: dict[str, Callable[..., Any]] | None = None, **options: Any) -> MessageBus:
        store = backend.open()
        bus = MessageBus(store=Intercepted(store, hooks) if hooks else store, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.stop()


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


class Intercepted:
    """A store whose chosen methods run through hooks, ``hook(original, *args, **kwargs)``:
    how a test stalls or fails one bus's store calls while the database stays healthy."""

    def __init__(self, store: Any, hooks: dict[str, Callable[..., Any]]) -> None:
        self._store = store
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        original = getattr(self._store, name)
        hook = self._hooks.get(name)
        return original if hook is None else functools.partial(hook, original)
