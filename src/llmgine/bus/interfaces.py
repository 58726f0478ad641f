"""The original module's import path for `HandlerPriority`."""

from __future__ import annotations

from llmgine.bus.registry import HandlerPriority

__all__ = ["HandlerPriority"]
