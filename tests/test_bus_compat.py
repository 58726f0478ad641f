"""The bus API a user of the original module touches: reset, ``bus.session()``, error
suppression, ``bus_exception_hook``, handler priorities, ``llmgine.llm.SessionID``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from llmgine.bus import HandlerPriority, MessageBus
from llmgine.database import MemoryStore
from llmgine.messages import CommandResult, Event, SessionEndEvent, SessionStartEvent
from llmgine_conformance.backends import SqlBackend


@dataclass(kw_only=True)
class CompatPing(Event):
    text: str = ""


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    bus = MessageBus(store=MemoryStore())
    await bus.start()
    yield bus
    await bus.stop()


def failing(event: Event) -> None:
    raise RuntimeError(f"handler failed on {type(event).__name__}")


def test_session_id_imports_from_the_original_path() -> None:
    from llmgine.llm import SessionID
    from llmgine.messages import SessionID as Ours

    assert SessionID is Ours


async def test_reset_stops_the_bus_and_forgets_handlers_and_errors(bus: MessageBus) -> None:
    seen: list[Event] = []
    bus.register_event_handler(CompatPing, seen.append)
    bus.register_event_handler(CompatPing, failing)
    bus.unsuppress_event_errors()
    await bus.publish(CompatPing(), await_processing=False)
    await bus.wait_for_events()
    assert bus.event_handler_errors
    await bus.reset()
    assert not bus.is_running
    assert bus.event_handler_errors == []
    await bus.start()
    await bus.publish(CompatPing())  # no handler left, and errors are suppressed again
    assert len(seen) == 1


async def test_errors_are_suppressed_by_default(bus: MessageBus) -> None:
    bus.register_event_handler(CompatPing, failing)
    await bus.publish(CompatPing())
    assert len(bus.event_handler_errors) == 1


async def test_unsuppressed_publish_raises_after_every_handler_ran(bus: MessageBus) -> None:
    seen: list[Event] = []
    bus.register_event_handler(CompatPing, failing)
    bus.register_event_handler(CompatPing, seen.append)
    bus.unsuppress_event_errors()
    with pytest.raises(RuntimeError, match="handler failed on CompatPing"):
        await bus.publish(CompatPing())
    assert len(seen) == 1
    bus.suppress_event_errors()
    await bus.publish(CompatPing())
    assert len(seen) == 2


async def test_unsuppressed_publish_raises_only_for_its_own_event(bus: MessageBus) -> None:
    @dataclass(kw_only=True)
    class CompatOther(Event):
        pass

    bus.register_event_handler(CompatOther, failing)
    bus.unsuppress_event_errors()
    await bus.publish(CompatOther(), await_processing=False)
    await bus.publish(CompatPing())  # another event's failure is not this publisher's
    assert len(bus.event_handler_errors) == 1


async def test_session_is_an_async_context_manager(bus: MessageBus) -> None:
    seen: list[Event] = []
    bus.register_event_handler(SessionStartEvent, seen.append)
    bus.register_event_handler(SessionEndEvent, seen.append)
    async with bus.session("s1") as session:
        session.register_event_handler(CompatPing, seen.append)
        await bus.publish(CompatPing(session_id=session.session_id))
    await bus.publish(CompatPing(session_id=session.session_id))  # its handler is gone
    assert [type(e) for e in seen] == [SessionStartEvent, CompatPing, SessionEndEvent]
    assert {e.session_id for e in seen} == {"s1"}


async def test_handlers_run_by_priority_then_registration(bus: MessageBus) -> None:
    order: list[str] = []

    def record(name: str) -> Callable[[Event], None]:
        return lambda event: order.append(name)

    bus.register_event_handler(CompatPing, record("normal-1"))
    bus.register_event_handler(CompatPing, record("low"), priority=HandlerPriority.LOW)
    bus.register_event_handler(CompatPing, record("highest"), priority=HandlerPriority.HIGHEST)
    bus.register_event_handler(CompatPing, record("normal-2"))
    bus.register_event_handler(CompatPing, record("session-high"), "s", HandlerPriority.HIGH)
    await bus.publish(CompatPing())
    await bus.publish(CompatPing(session_id="s"))
    assert order == [
        *["highest", "normal-1", "normal-2", "low"],
        *["highest", "session-high", "normal-1", "normal-2", "low"],
    ]


_CRASHING_APP = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, timedelta
    from llmgine.bus import MessageBus, bus_exception_hook
    from llmgine.messages import ScheduledEvent

    async def main():
        bus = MessageBus()
        await bus.start()
        if sys.argv[1] == "hook":
            bus_exception_hook(bus)
        due = datetime.now() + timedelta(seconds=60)
        await bus.publish(ScheduledEvent(event_id="held", scheduled_time=due))
        for _ in range(200):  # until a claim holds it (every poll interval)
            if bus.scheduled_in_memory:
                break
            await asyncio.sleep(0.05)
        assert bus.scheduled_in_memory == 1
        raise RuntimeError("the application crashed")

    asyncio.run(main())
    """
)


def run_crashing_app(backend: SqlBackend, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **backend.environment()}
    command = [sys.executable, "-c", _CRASHING_APP, mode]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", ["hook", "no-hook"])
def test_exception_hook_releases_the_bus_events_at_once(sql_backend: SqlBackend, mode: str) -> None:
    result = run_crashing_app(sql_backend, mode)
    assert result.returncode == 1, result.stderr
    assert "RuntimeError: the application crashed" in result.stderr  # still reported
    store = sql_backend.open()
    far = datetime.now(UTC) + timedelta(hours=1)
    taken = store.claim("next-bus", due_before=far, lease=timedelta(seconds=30), limit=10)
    # with the hook, another bus takes the event over at once; without, after the lease
    assert [e.event_id for e in taken] == (["held"] if mode == "hook" else [])


def test_command_result_takes_the_original_positional_order() -> None:
    result = CommandResult(True, "c1", "2025-01-01T00:00:00", 42, None)
    assert (result.success, result.command_id, result.result) == (True, "c1", 42)


def test_event_fields_are_keyword_only_so_subclasses_may_require_fields() -> None:
    @dataclass
    class CompatRequired(Event):
        text: str

    assert CompatRequired("hi").text == "hi"
    with pytest.raises(TypeError):
        Event("an-id")  # type: ignore[misc]
