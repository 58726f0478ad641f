"""Sessions on the bus: scoped handlers, start and end events, cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from llmgine.bus import MessageBus
from llmgine.database import MemoryStore
from llmgine.messages import (
    BUS_SESSION,
    Command,
    Event,
    SessionEndEvent,
    SessionID,
    SessionStartEvent,
)


@dataclass(kw_only=True)
class BusSessionTestNote(Event):
    pass


@dataclass(kw_only=True)
class BusSessionTestAsk(Command):
    pass


class Recorder:
    """A sync event handler that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    bus = MessageBus(store=MemoryStore())
    await bus.start()
    yield bus
    await bus.stop()


def note(session: str) -> BusSessionTestNote:
    return BusSessionTestNote(session_id=SessionID(session))


# --- scoping -----------------------------------------------------------------------------


async def test_a_bus_scoped_handler_sees_events_of_every_session(bus: MessageBus) -> None:
    seen = Recorder()
    bus.register_event_handler(BusSessionTestNote, seen)
    for session in (BUS_SESSION, "s-1", "s-2"):
        await bus.publish(note(session))
    assert [e.session_id for e in seen.events] == [BUS_SESSION, "s-1", "s-2"]


async def test_a_session_scoped_handler_sees_only_its_sessions_events(bus: MessageBus) -> None:
    seen = Recorder()
    bus.register_event_handler(BusSessionTestNote, seen, session_id="s-1")
    for session in (BUS_SESSION, "s-1", "s-2"):
        await bus.publish(note(session))
    assert [e.session_id for e in seen.events] == ["s-1"]


async def test_unregister_session_handlers_removes_that_sessions_handlers(
    bus: MessageBus,
) -> None:
    gone, kept, bus_wide = Recorder(), Recorder(), Recorder()
    bus.register_event_handler(BusSessionTestNote, gone, session_id="s-1")
    bus.register_event_handler(BusSessionTestNote, kept, session_id="s-2")
    bus.register_event_handler(BusSessionTestNote, bus_wide)
    bus.register_command_handler(BusSessionTestAsk, lambda c: "s-1", session_id="s-1")
    bus.unregister_session_handlers("s-1")
    await bus.publish(note("s-1"))
    await bus.publish(note("s-2"))
    result = await bus.execute(BusSessionTestAsk(session_id=SessionID("s-1")))
    assert gone.events == []
    assert len(kept.events) == 1
    assert len(bus_wide.events) == 2
    assert result.success is False


# --- the session object ------------------------------------------------------------------


async def test_entering_a_session_publishes_session_start_event(bus: MessageBus) -> None:
    starts = Recorder()
    bus.register_event_handler(SessionStartEvent, starts)
    async with bus.create_session() as session:
        assert [e.session_id for e in starts.events] == [session.session_id]


async def test_leaving_a_session_publishes_session_end_event_without_error(
    bus: MessageBus,
) -> None:
    ends = Recorder()
    bus.register_event_handler(SessionEndEvent, ends)
    async with bus.create_session() as session:
        assert ends.events == []
    await bus.wait_for_events()
    [end] = ends.events
    assert isinstance(end, SessionEndEvent)
    assert end.session_id == session.session_id
    assert end.error is None


async def test_a_session_left_by_an_error_publishes_the_error(bus: MessageBus) -> None:
    ends = Recorder()
    bus.register_event_handler(SessionEndEvent, ends)
    failure = RuntimeError("session body failed")
    with pytest.raises(RuntimeError):
        async with bus.create_session():
            raise failure
    await bus.wait_for_events()
    [end] = ends.events
    assert isinstance(end, SessionEndEvent)
    assert end.error is failure


async def test_leaving_a_session_unregisters_its_handlers(bus: MessageBus) -> None:
    seen = Recorder()
    async with bus.create_session() as session:
        session.register_event_handler(BusSessionTestNote, seen)
        session.register_command_handler(BusSessionTestAsk, lambda c: "answer")
        await bus.publish(note(session.session_id))
        assert len(seen.events) == 1
    await bus.publish(note(session.session_id))
    result = await bus.execute(BusSessionTestAsk(session_id=session.session_id))
    assert len(seen.events) == 1
    assert result.success is False


async def test_session_handlers_see_only_their_sessions_events(bus: MessageBus) -> None:
    seen = Recorder()
    async with bus.create_session() as session:
        session.register_event_handler(BusSessionTestNote, seen)
        await bus.publish(note("another-session"))
        await bus.publish(BusSessionTestNote())
        await bus.publish(note(session.session_id))
    assert [e.session_id for e in seen.events] == [session.session_id]


async def test_registering_on_an_ended_session_raises(bus: MessageBus) -> None:
    async with bus.create_session() as session:
        pass
    with pytest.raises(RuntimeError):
        session.register_event_handler(BusSessionTestNote, Recorder())
    with pytest.raises(RuntimeError):
        session.register_command_handler(BusSessionTestAsk, lambda c: None)


async def test_execute_with_session_runs_the_command_in_that_session(bus: MessageBus) -> None:
    received: list[Command] = []

    def handler(command: Command) -> str:
        received.append(command)
        return "done"

    async with bus.create_session() as session:
        session.register_command_handler(BusSessionTestAsk, handler)
        command = BusSessionTestAsk()
        result = await session.execute_with_session(command)
    assert command.session_id == session.session_id
    assert received == [command]
    assert result.success is True
    assert result.result == "done"
    assert result.session_id == session.session_id


async def test_a_session_takes_the_id_it_is_given(bus: MessageBus) -> None:
    async with bus.create_session("my-session") as session:
        assert session.session_id == "my-session"


async def test_sessions_get_distinct_ids_by_default(bus: MessageBus) -> None:
    async with bus.create_session() as one, bus.create_session() as two:
        assert one.session_id != two.session_id
