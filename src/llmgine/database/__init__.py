"""The reference store: scheduled events that survive restarts and crashes, and an event log.

The module functions are the original llmgine API, configured from the
environment (see `llmgine.database.config`). The store contract is in
`llmgine.database.store`; `SQLAlchemyStore` and `MemoryStore` implement it.
"""

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
from llmgine.database.memory import MemoryDatabase, MemoryStore
from llmgine.database.models import EventRecord, ScheduledEventRecord
from llmgine.database.retention import Retention
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.database.store import EventLog, LogEntry, QuarantinedEvent, ScheduledEventStore
from llmgine.database.writer import Writer, WriterStats

__all__ = [
    "DatabaseConfig",
    "DatabaseEngine",
    "EventLog",
    "EventRecord",
    "LogEntry",
    "MemoryDatabase",
    "MemoryStore",
    "QuarantinedEvent",
    "Retention",
    "SQLAlchemyStore",
    "ScheduledEventRecord",
    "ScheduledEventStore",
    "Writer",
    "WriterStats",
    "drop_all",
    "get_and_delete_unfinished_events",
    "persist_event",
    "reset_engine",
    "save_unfinished_events",
]
