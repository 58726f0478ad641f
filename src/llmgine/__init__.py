"""llmgine: an asyncio message bus with durable scheduled events and an event log."""

from __future__ import annotations

__version__ = "0.1.0"
