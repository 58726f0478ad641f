"""The message bus: commands, events, scheduled events and sessions."""

from __future__ import annotations

from llmgine.bus.bus import MessageBus
from llmgine.bus.session import BusSession

__all__ = ["BusSession", "MessageBus"]
