"""Handler registry: which handlers see which events and commands.

A handler is bus-scoped (registered under ``BUS``) or session-scoped. An
event reaches the bus-scoped handlers of its exact type and the handlers of
its own session. A command goes to its session's handler, else the bus's.
"""

from __future__ import annotations

import bisect
import inspect
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.events import Event
from llmgine.messages.types import BUS_SESSION, SessionID

EventHandler = Callable[[Any], Awaitable[None] | None]
CommandHandler = Callable[[Any], Awaitable[CommandResult | Any] | CommandResult | Any]


class HandlerPriority:
    """Event handler priorities, as in the original bus: lower values run first."""

    HIGHEST = 0
    HIGH = 10
    NORMAL = 50
    LOW = 90
    LOWEST = 100


@dataclass(frozen=True)
class Registered:
    """A handler with what is known about it up front."""

    fn: Callable[[Any], Any]
    is_async: bool
    name: str
    priority: int = HandlerPriority.NORMAL

    @classmethod
    def of(cls, fn: Callable[[Any], Any], priority: int = HandlerPriority.NORMAL) -> Registered:
        name = getattr(fn, "__qualname__", None) or repr(fn)
        return cls(fn, inspect.iscoroutinefunction(fn), name, priority)


def _priority(handler: Registered) -> int:
    return handler.priority


class HandlerRegistry:
    """Event and command handlers by type and session."""

    def __init__(self) -> None:
        self._events: dict[type[Event], dict[str, list[Registered]]] = defaultdict(dict)
        self._commands: dict[type[Command], dict[str, Registered]] = defaultdict(dict)

    def add_event_handler(
        self,
        event_type: type[Event],
        handler: EventHandler,
        session_id: str,
        priority: int = HandlerPriority.NORMAL,
    ) -> None:
        """Handlers run by ``priority`` (lower first), then in registration order."""
        handlers = self._events[event_type].setdefault(session_id, [])
        entry = Registered.of(handler, priority)
        bisect.insort_right(handlers, entry, key=_priority)

    def add_command_handler(
        self, command_type: type[Command], handler: CommandHandler, session_id: str
    ) -> None:
        """Raises `ValueError` if the session already has a handler for ``command_type``."""
        by_session = self._commands[command_type]
        if session_id in by_session:
            raise ValueError(
                f"a handler for {command_type.__name__} is already registered "
                f"in session {session_id!r}"
            )
        by_session[session_id] = Registered.of(handler)

    def remove_session(self, session_id: SessionID | str) -> None:
        """Forget every handler registered under ``session_id``."""
        for by_session in self._events.values():
            by_session.pop(session_id, None)
        for commands in self._commands.values():
            commands.pop(session_id, None)

    def event_handlers(self, event: Event) -> list[Registered]:
        by_session = self._events.get(type(event))
        if not by_session:
            return []
        handlers = by_session.get(BUS_SESSION, [])
        if event.session_id != BUS_SESSION:
            own = by_session.get(event.session_id)
            if own:
                return sorted([*handlers, *own], key=_priority)
        return handlers

    def command_handler(self, command: Command) -> Registered | None:
        by_session = self._commands.get(type(command))
        if not by_session:
            return None
        return by_session.get(command.session_id) or by_session.get(BUS_SESSION)
