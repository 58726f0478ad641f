"""The original module's import path for `SessionID`: ``from llmgine.llm import SessionID``."""

from __future__ import annotations

from llmgine.messages.types import SessionID

__all__ = ["SessionID"]
