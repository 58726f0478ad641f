"""The original module's import path: ``from llmgine.database.database import ...``."""

from __future__ import annotations

from llmgine.database.api import (
    drop_all,
    get_and_delete_unfinished_events,
    persist_event,
    reset_engine,
    save_unfinished_events,
)
from llmgine.database.config import DatabaseConfig
from llmgine.database.engine import DatabaseEngine
from llmgine.database.models import Base, EventRecord, ScheduledEventRecord

__all__ = [
    "Base",
    "DatabaseConfig",
    "DatabaseEngine",
    "EventRecord",
    "ScheduledEventRecord",
    "drop_all",
    "get_and_delete_unfinished_events",
    "persist_event",
    "reset_engine",
    "save_unfinished_events",
]
