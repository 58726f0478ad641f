"""Messages of the bus: events, commands, scheduled events and their registry."""

from __future__ import annotations

from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.events import (
    CommandResultEvent,
    CommandStartedEvent,
    Event,
    EventHandlerFailedEvent,
    ScheduledEventMissed,
    SessionEndEvent,
    SessionEvent,
    SessionStartEvent,
)
from llmgine.messages.scheduled_events import (
    EVENT_CLASSES,
    ScheduledEvent,
    register_scheduled_event_class,
)
from llmgine.messages.types import BUS_SESSION, SessionID

__all__ = [
    "BUS_SESSION",
    "EVENT_CLASSES",
    "Command",
    "CommandResult",
    "CommandResultEvent",
    "CommandStartedEvent",
    "Event",
    "EventHandlerFailedEvent",
    "ScheduledEvent",
    "ScheduledEventMissed",
    "SessionEndEvent",
    "SessionEvent",
    "SessionID",
    "SessionStartEvent",
    "register_scheduled_event_class",
]
