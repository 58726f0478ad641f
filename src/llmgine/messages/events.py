"""Events: facts published on the bus, seen by every handler of their type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.ids import new_id as _new_id
from llmgine.messages.types import BUS_SESSION, SessionID


def _now_iso() -> str:
    return datetime.now().isoformat()


@dataclass(kw_only=True)
class Event:
    """Something that happened. Subclasses are dataclasses with more fields.

    ``timestamp`` is an ISO string of local time by default, as in the original
    bus; a ``datetime`` is accepted too and is kept as one.
    """

    event_id: str = field(default_factory=_new_id)
    timestamp: str | datetime = field(default_factory=_now_iso)
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: SessionID = BUS_SESSION

    def to_dict(self) -> dict[str, Any]:
        """Every dataclass field by name, values as they are (not JSON-encoded)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The inverse of `to_dict`; keys that are not init fields are ignored."""
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in data.items() if k in init})


@dataclass(kw_only=True)
class EventHandlerFailedEvent(Event):
    """Published when an event handler raised; the bus keeps running."""

    event: Event | None = None
    handler: str | None = None
    exception: BaseException | None = None


@dataclass(kw_only=True)
class CommandStartedEvent(Event):
    """Published when a command starts executing."""

    command: Command | None = None


@dataclass(kw_only=True)
class CommandResultEvent(Event):
    """Published when a command has a result."""

    command_result: CommandResult | None = None


@dataclass(kw_only=True)
class SessionEvent(Event):
    """An event that marks a session's life."""


@dataclass(kw_only=True)
class SessionStartEvent(SessionEvent):
    """A session started."""


@dataclass(kw_only=True)
class SessionEndEvent(SessionEvent):
    """A session ended, with the error that ended it, if any."""

    error: BaseException | None = None


@dataclass(kw_only=True)
class ScheduledEventMissed(Event):
    """A scheduled event fired later than the bus's ``misfire_grace`` and was not delivered."""

    missed: Event | None = None
    late_by: timedelta = timedelta(0)
