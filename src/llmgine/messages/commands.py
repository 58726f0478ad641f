"""Commands: requests for one handler to act, answered by a CommandResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmgine.messages.ids import new_id as _new_id
from llmgine.messages.types import BUS_SESSION, SessionID


def _now_iso() -> str:
    return datetime.now().isoformat()


@dataclass(kw_only=True)
class Command:
    """An action to be performed by exactly one handler."""

    command_id: str = field(default_factory=_new_id)
    timestamp: str = field(default_factory=_now_iso)
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: SessionID = BUS_SESSION


@dataclass
class CommandResult:
    """The outcome of executing a command.

    Its fields may be given by position, in the original's order
    (``CommandResult(True, command_id, timestamp, result)``); a subclass adding
    fields without defaults must declare them ``kw_only``.
    """

    success: bool
    command_id: str = field(default_factory=_new_id)
    timestamp: str = field(default_factory=_now_iso)
    result: Any = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: SessionID = BUS_SESSION
