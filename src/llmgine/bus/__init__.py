"""The message bus: commands, events, scheduled events and sessions."""

from __future__ import annotations

from llmgine.bus.bus import MessageBus, bus_exception_hook
from llmgine.bus.registry import HandlerPriority
from llmgine.bus.session import BusSession

__all__ = ["BusSession", "HandlerPriority", "MessageBus", "bus_exception_hook"]
