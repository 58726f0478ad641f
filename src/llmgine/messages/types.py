"""Small shared types of the message classes."""

from __future__ import annotations

from typing import NewType

SessionID = NewType("SessionID", str)

BUS_SESSION = SessionID("BUS")
"""The session of bus-scoped handlers and of events published outside any session."""
