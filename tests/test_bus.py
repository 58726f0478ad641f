"""The message bus: publishing, handler failures, commands, buffering before start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from llmgine.bus import MessageBus
from llmgine.database import MemoryStore
from llmgine.messages import (
    Command,
    CommandResult,
    CommandResultEvent,
    CommandStartedEvent,
    Event,
    EventHandlerFailedEvent,
    SessionID,
)

TIMEOUT = 5.0
"""Upper bound for anything that should happen at once; a deadlock fails instead of hanging."""


@dataclass(kw_only=True)
class BusTestPing(Event):
    text: str = ""


@dataclass(kw_only=True)
class BusTestPingChild(BusTestPing):
    pass


@dataclass(kw_only=True)
class BusTestPong(Event):
    pass


@dataclass(kw_only=True)
class BusTestAdd(Command):
    a: int = 0
    b: int = 0


@dataclass(kw_only=True)
class BusTestUnhandled(Command):
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


async def new_bus() -> MessageBus:
    bus = MessageBus(store=MemoryStore())
    await bus.start()
    return bus


# --- independence ----------------------------------------------------------------------


async def test_two_buses_do_not_share_handlers(bus: MessageBus) -> None:
    other = await new_bus()
    mine, theirs = Recorder(), Recorder()
    bus.register_event_handler(BusTestPing, mine)
    other.register_event_handler(BusTestPing, theirs)
    try:
        event = BusTestPing(text="one")
        await bus.publish(event)
        assert mine.events == [event]
        assert theirs.events == []
    finally:
        await other.stop()


async def test_a_blocked_bus_does_not_block_another(bus: MessageBus) -> None:
    other = await new_bus()
    release = asyncio.Event()

    async def blocking(event: Event) -> None:
        await release.wait()

    seen = Recorder()
    bus.register_event_handler(BusTestPing, blocking)
    other.register_event_handler(BusTestPing, seen)
    try:
        await bus.publish(BusTestPing(), await_processing=False)
        await asyncio.wait_for(other.publish(BusTestPing(text="through")), TIMEOUT)
        assert len(seen.events) == 1
    finally:
        release.set()
        await other.stop()


# --- publishing ------------------------------------------------------------------------


async def test_publish_calls_a_sync_handler(bus: MessageBus) -> None:
    seen = Recorder()
    bus.register_event_handler(BusTestPing, seen)
    event = BusTestPing(text="hi")
    await bus.publish(event)
    assert seen.events == [event]


async def test_publish_calls_an_async_handler(bus: MessageBus) -> None:
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    bus.register_event_handler(BusTestPing, handler)
    event = BusTestPing()
    await bus.publish(event)
    assert seen == [event]


async def test_every_handler_of_a_type_runs_in_registration_order(bus: MessageBus) -> None:
    calls: list[str] = []
    bus.register_event_handler(BusTestPing, lambda e: calls.append("first"))
    bus.register_event_handler(BusTestPing, lambda e: calls.append("second"))
    await bus.publish(BusTestPing())
    assert calls == ["first", "second"]


async def test_publish_awaiting_processing_returns_after_slow_handlers_finished(
    bus: MessageBus,
) -> None:
    finished: list[Event] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.05)
        finished.append(event)

    bus.register_event_handler(BusTestPing, slow)
    await bus.publish(BusTestPing(), await_processing=True)
    assert len(finished) == 1


async def test_publish_without_awaiting_processing_returns_before_handlers_run(
    bus: MessageBus,
) -> None:
    seen = Recorder()
    bus.register_event_handler(BusTestPing, seen)
    await bus.publish(BusTestPing(), await_processing=False)
    assert seen.events == []
    await bus.wait_for_events()
    assert len(seen.events) == 1


async def test_wait_for_events_waits_for_every_queued_event(bus: MessageBus) -> None:
    done: list[str] = []

    async def slow(event: BusTestPing) -> None:
        await asyncio.sleep(0.01)
        done.append(event.text)

    bus.register_event_handler(BusTestPing, slow)
    for i in range(5):
        await bus.publish(BusTestPing(text=str(i)), await_processing=False)
    await asyncio.wait_for(bus.wait_for_events(), TIMEOUT)
    assert done == ["0", "1", "2", "3", "4"]


async def test_a_handler_for_a_base_class_does_not_receive_subclass_events(
    bus: MessageBus,
) -> None:
    base, child = Recorder(), Recorder()
    bus.register_event_handler(BusTestPing, base)
    bus.register_event_handler(BusTestPingChild, child)
    event = BusTestPingChild()
    await bus.publish(event)
    assert base.events == []
    assert child.events == [event]


async def test_an_event_without_handlers_is_accepted(bus: MessageBus) -> None:
    await asyncio.wait_for(bus.publish(BusTestPong()), TIMEOUT)


async def test_publish_from_a_handler_awaiting_processing_does_not_deadlock(
    bus: MessageBus,
) -> None:
    order: list[str] = []

    async def on_ping(event: Event) -> None:
        order.append("ping start")
        await bus.publish(BusTestPong(), await_processing=True)
        order.append("ping end")

    bus.register_event_handler(BusTestPing, on_ping)
    bus.register_event_handler(BusTestPong, lambda e: order.append("pong"))
    await asyncio.wait_for(bus.publish(BusTestPing()), TIMEOUT)
    assert order == ["ping start", "pong", "ping end"]


async def test_a_handler_may_gather_publishes_awaiting_processing(bus: MessageBus) -> None:
    pongs = Recorder()

    async def on_ping(event: Event) -> None:
        await asyncio.gather(bus.publish(BusTestPong()), bus.publish(BusTestPong()))

    bus.register_event_handler(BusTestPing, on_ping)
    bus.register_event_handler(BusTestPong, pongs)
    await asyncio.wait_for(bus.publish(BusTestPing()), TIMEOUT)
    assert len(pongs.events) == 2


async def test_a_handler_may_publish_under_a_timeout(bus: MessageBus) -> None:
    pongs = Recorder()

    async def on_ping(event: Event) -> None:
        await asyncio.wait_for(bus.publish(BusTestPong()), TIMEOUT)

    bus.register_event_handler(BusTestPing, on_ping)
    bus.register_event_handler(BusTestPong, pongs)
    await asyncio.wait_for(bus.publish(BusTestPing()), 2 * TIMEOUT)
    assert len(pongs.events) == 1


async def test_stop_finishes_queued_events() -> None:
    bus = await new_bus()
    seen = Recorder()
    bus.register_event_handler(BusTestPing, seen)
    for _ in range(3):
        await bus.publish(BusTestPing(), await_processing=False)
    await bus.stop()
    assert len(seen.events) == 3


async def test_a_handler_may_stop_its_bus() -> None:
    bus = await new_bus()
    later = Recorder()

    async def shut_down(event: Event) -> None:
        await bus.stop()
        later.events.append(event)

    bus.register_event_handler(BusTestPing, shut_down)
    bus.register_event_handler(BusTestPong, later)
    await bus.publish(BusTestPong(), await_processing=False)
    await asyncio.wait_for(bus.publish(BusTestPing()), TIMEOUT)
    await asyncio.wait_for(bus.stop(), TIMEOUT)  # waits for the stop the handler asked for
    assert not bus.is_running
    assert [type(e) for e in later.events] == [BusTestPong, BusTestPing]


async def test_a_stopped_bus_can_be_started_again() -> None:
    bus = await new_bus()
    seen = Recorder()
    bus.register_event_handler(BusTestPing, seen)
    await bus.stop()
    await bus.start()
    try:
        await asyncio.wait_for(bus.publish(BusTestPing()), TIMEOUT)
        assert len(seen.events) == 1
    finally:
        await bus.stop()


# --- buffering before start ------------------------------------------------------------


async def test_events_published_before_start_are_delivered_after_start() -> None:
    bus = MessageBus(store=MemoryStore())
    seen = Recorder()
    bus.register_event_handler(BusTestPing, seen)
    first, second = BusTestPing(text="a"), BusTestPing(text="b")
    await asyncio.wait_for(bus.publish(first), TIMEOUT)
    await bus.publish(second, await_processing=False)
    assert seen.events == []
    await bus.start()
    try:
        await bus.wait_for_events()
        assert seen.events == [first, second]
    finally:
        await bus.stop()


# --- failing handlers ------------------------------------------------------------------


def failing_sync_handler(event: Event) -> None:
    raise ValueError("sync boom")


async def failing_async_handler(event: Event) -> None:
    await asyncio.sleep(0)
    raise ValueError("async boom")


@pytest.mark.parametrize("handler", [failing_sync_handler, failing_async_handler])
async def test_a_failing_handler_publishes_a_handler_failed_event(
    bus: MessageBus, handler: Callable[[Any], Any]
) -> None:
    failures = Recorder()
    bus.register_event_handler(EventHandlerFailedEvent, failures)
    bus.register_event_handler(BusTestPing, handler)
    event = BusTestPing(session_id=SessionID("s-1"))
    await bus.publish(event)
    await bus.wait_for_events()
    [failed] = failures.events
    assert isinstance(failed, EventHandlerFailedEvent)
    assert failed.event is event
    assert failed.handler is not None
    assert handler.__name__ in failed.handler
    assert isinstance(failed.exception, ValueError)
    assert "boom" in str(failed.exception)
    assert bus.event_handler_errors == [failed.exception]


async def test_other_handlers_of_the_event_still_run_after_one_fails(bus: MessageBus) -> None:
    seen = Recorder()
    bus.register_event_handler(BusTestPing, failing_sync_handler)
    bus.register_event_handler(BusTestPing, seen)
    await bus.publish(BusTestPing())
    assert len(seen.events) == 1


async def test_later_events_are_processed_after_a_handler_failed(bus: MessageBus) -> None:
    pongs = Recorder()
    bus.register_event_handler(BusTestPing, failing_async_handler)
    bus.register_event_handler(BusTestPong, pongs)
    await bus.publish(BusTestPing())
    await asyncio.wait_for(bus.publish(BusTestPong()), TIMEOUT)
    assert len(pongs.events) == 1


async def test_a_failing_failure_handler_does_not_loop(bus: MessageBus) -> None:
    calls: list[Event] = []

    def failing_on_failure(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("failure handler fails too")

    bus.register_event_handler(EventHandlerFailedEvent, failing_on_failure)
    bus.register_event_handler(BusTestPing, failing_sync_handler)
    await bus.publish(BusTestPing())
    await asyncio.wait_for(bus.wait_for_events(), TIMEOUT)
    await asyncio.sleep(0.05)
    await bus.wait_for_events()
    assert len(calls) == 1
    pongs = Recorder()
    bus.register_event_handler(BusTestPong, pongs)
    await asyncio.wait_for(bus.publish(BusTestPong()), TIMEOUT)
    assert len(pongs.events) == 1


# --- commands ------------------------------------------------------------------------


def add(command: BusTestAdd) -> int:
    return command.a + command.b


async def add_async(command: BusTestAdd) -> int:
    await asyncio.sleep(0)
    return command.a + command.b


@pytest.mark.parametrize("handler", [add, add_async], ids=["sync", "async"])
async def test_execute_wraps_a_plain_return_value_in_a_successful_result(
    bus: MessageBus, handler: Callable[[Any], Any]
) -> None:
    bus.register_command_handler(BusTestAdd, handler)
    command = BusTestAdd(a=2, b=3)
    result = await bus.execute(command)
    assert result.success is True
    assert result.result == 5
    assert result.command_id == command.command_id
    assert result.error is None


async def test_execute_returns_a_handlers_command_result_as_is(bus: MessageBus) -> None:
    own = CommandResult(success=False, result="custom", error="handler says no")
    bus.register_command_handler(BusTestAdd, lambda command: own)
    assert await bus.execute(BusTestAdd()) is own


async def test_execute_returns_a_failed_result_when_the_handler_raises(bus: MessageBus) -> None:
    def broken(command: Command) -> None:
        raise KeyError("missing thing")

    bus.register_command_handler(BusTestAdd, broken)
    command = BusTestAdd()
    result = await bus.execute(command)
    assert result.success is False
    assert result.command_id == command.command_id
    assert result.error is not None
    assert "KeyError" in result.error
    assert "missing thing" in result.error


async def test_execute_without_a_handler_returns_a_failed_result(bus: MessageBus) -> None:
    result = await bus.execute(BusTestUnhandled())
    assert result.success is False
    assert result.error is not None
    assert "BusTestUnhandled" in result.error


async def test_execute_publishes_command_started_and_result_events(bus: MessageBus) -> None:
    started, finished = Recorder(), Recorder()
    bus.register_event_handler(CommandStartedEvent, started)
    bus.register_event_handler(CommandResultEvent, finished)
    bus.register_command_handler(BusTestAdd, add)
    command = BusTestAdd(a=1, b=1)
    result = await bus.execute(command)
    await bus.wait_for_events()
    [start_event] = started.events
    [result_event] = finished.events
    assert isinstance(start_event, CommandStartedEvent)
    assert start_event.command is command
    assert isinstance(result_event, CommandResultEvent)
    assert result_event.command_result is result


async def test_registering_a_second_command_handler_in_one_session_raises(
    bus: MessageBus,
) -> None:
    bus.register_command_handler(BusTestAdd, add)
    with pytest.raises(ValueError, match="BusTestAdd"):
        bus.register_command_handler(BusTestAdd, add_async)


async def test_one_command_type_may_have_a_handler_in_each_session(bus: MessageBus) -> None:
    bus.register_command_handler(BusTestAdd, add)
    bus.register_command_handler(BusTestAdd, add, session_id="s-1")
    bus.register_command_handler(BusTestAdd, add, session_id="s-2")


async def test_a_sessions_command_handler_takes_precedence_for_its_commands(
    bus: MessageBus,
) -> None:
    bus.register_command_handler(BusTestAdd, lambda command: "bus")
    bus.register_command_handler(BusTestAdd, lambda command: "session", session_id="s-1")
    ours = await bus.execute(BusTestAdd(session_id=SessionID("s-1")))
    others = await bus.execute(BusTestAdd(session_id=SessionID("s-2")))
    plain = await bus.execute(BusTestAdd())
    assert (ours.result, others.result, plain.result) == ("session", "bus", "bus")


class RefusingLog(MemoryStore):
    """An event log that refuses events whose id starts with "bad"."""

    def append(self, events: Any) -> None:
        from llmgine.errors import RejectedDataError

        if any(e.event_id.startswith("bad") for e in events):
            raise RejectedDataError("refused")
        super().append(events)


async def test_event_log_stats_count_across_restarts() -> None:
    log = RefusingLog()
    bus = MessageBus(store=MemoryStore(), event_log=log)
    assert bus.event_log_stats() is not None
    for round_ in range(2):
        await bus.start()
        await bus.publish(Event())
        await bus.publish(Event(event_id=f"bad-{round_}"))
        await bus.stop()
    stats = bus.event_log_stats()
    assert stats is not None
    assert (stats.written, stats.dropped, stats.queue_depth) == (2, 2, 0)
    assert stats.last_error == "refused"
    assert MessageBus(store=MemoryStore()).event_log_stats() is None
    assert MessageBus().event_log_stats() is not None  # the environment's writer
