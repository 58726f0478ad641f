"""Sessions: a group of handlers that is unregistered as one when the session ends."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Self

from llmgine.messages.commands import Command, CommandResult
from llmgine.messages.events import Event, SessionEndEvent, SessionStartEvent
from llmgine.messages.types import SessionID

if TYPE_CHECKING:
    from llmgine.bus.bus import MessageBus
    from llmgine.bus.registry import CommandHandler, EventHandler


class BusSession:
    """Handlers scoped to one session of one bus.

    ``async with bus.create_session() as session:`` publishes a
    `SessionStartEvent`; leaving the block unregisters the session's handlers
    and publishes a `SessionEndEvent` carrying the error, if any.
    """

    def __init__(self, bus: MessageBus, session_id: str | None = None) -> None:
        self.bus = bus
        self.session_id = SessionID(session_id or str(uuid.uuid4()))
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    async def start(self) -> None:
        await self.bus.publish(SessionStartEvent(session_id=self.session_id))

    async def end(self, error: BaseException | None = None) -> None:
        if not self._active:
            return
        self._active = False
        self.bus.unregister_session_handlers(self.session_id)
        await self.bus.publish(SessionEndEvent(session_id=self.session_id, error=error))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.end(exc)

    def _check_active(self) -> None:
        if not self._active:
            raise RuntimeError(f"session {self.session_id} has ended")

    def register_event_handler(self, event_type: type[Event], handler: EventHandler) -> Self:
        self._check_active()
        self.bus.register_event_handler(event_type, handler, self.session_id)
        return self

    def register_command_handler(
        self, command_type: type[Command], handler: CommandHandler
    ) -> Self:
        self._check_active()
        self.bus.register_command_handler(command_type, handler, self.session_id)
        return self

    async def execute_with_session(self, command: Command) -> CommandResult:
        """Execute ``command`` as part of this session."""
        self._check_active()
        command.session_id = self.session_id
        return await self.bus.execute(command)
