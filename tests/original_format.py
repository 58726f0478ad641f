"""Build a database as the original llmgine module left it, from its documented format.

The original module (see ``seed-report.md``) created, in the configured schema
(PostgreSQL) or under the ``<schema>_`` table prefix (SQLite):

- ``scheduled_events``: id (integer primary key), event_id, event_class_name
  (strings of 255), event_data (JSON: the event's ``to_dict()`` with datetimes as
  ISO strings), scheduled_time and created_at (naive local ``DATETIME``), no other
  column, index, unique constraint or version table;
- ``event_log``: id, event_id, event_class_name, event_data (JSON text),
  session_id, timestamp and created_at (naive local ``DATETIME``).

`build` writes such tables and rows with SQLAlchemy Core, nothing of llmgine's.
Run it as a script to write a fixture file::

    python tests/original_format.py sqlite:///original.db [schema]
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    text,
)


@dataclass
class OriginalEvent:
    """A scheduled event as the original stored it (its ``to_dict()`` fields)."""

    scheduled_time: datetime
    """Naive local time, as ``datetime.now() + ...`` gave it."""
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now().isoformat())
    session_id: str = "ROOT"
    metadata: dict[str, Any] = field(default_factory=dict)
    class_name: str = "ScheduledEvent"
    extra: dict[str, Any] = field(default_factory=dict)
    """What a subclass's own ``to_dict`` override added."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "metadata": self.metadata,
            "session_id": self.session_id,
            "scheduled_time": self.scheduled_time.isoformat(),
            **self.extra,
        }


def _tables(schema: str, postgres: bool) -> tuple[MetaData, Table, Table]:
    metadata = MetaData(schema=schema if postgres else None)
    prefix = "" if postgres else schema.replace(".", "_") + "_"
    scheduled = Table(
        f"{prefix}scheduled_events",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(255), nullable=False),
        Column("event_class_name", String(255), nullable=False),
        Column("event_data", JSON, nullable=False),
        Column("scheduled_time", DateTime, nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    log = Table(
        f"{prefix}event_log",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(255), nullable=False),
        Column("event_class_name", String(255), nullable=False),
        Column("event_data", Text, nullable=False),
        Column("session_id", String(255), nullable=True),
        Column("timestamp", DateTime, nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    return metadata, scheduled, log


def build(
    url: str,
    schema: str,
    events: list[OriginalEvent],
    logged: list[OriginalEvent] | None = None,
) -> None:
    """Create the original tables at ``url`` and store ``events`` (and log ``logged``)."""
    postgres = url.startswith(("postgresql", "postgres"))
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url)
    metadata, scheduled, log = _tables(schema, postgres)
    try:
        with engine.begin() as conn:
            if postgres:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            metadata.create_all(conn)
            now = datetime.now()
            for event in events:
                conn.execute(
                    insert(scheduled).values(
                        event_id=event.event_id,
                        event_class_name=event.class_name,
                        event_data=event.to_dict(),
                        scheduled_time=event.scheduled_time,
                        created_at=now,
                    )
                )
            for event in logged or []:
                conn.execute(
                    insert(log).values(
                        event_id=event.event_id,
                        event_class_name=event.class_name,
                        event_data=json.dumps(event.to_dict(), default=str),
                        session_id=event.session_id,
                        timestamp=datetime.fromisoformat(event.timestamp),
                        created_at=now,
                    )
                )
    finally:
        engine.dispose()


def sample_events() -> list[OriginalEvent]:
    """What a stopped original bus typically left: one event overdue, two due soon."""
    now = datetime.now()
    return [
        OriginalEvent(scheduled_time=now - timedelta(minutes=5), event_id="original-overdue"),
        OriginalEvent(scheduled_time=now + timedelta(seconds=1), event_id="original-soon"),
        OriginalEvent(
            scheduled_time=now + timedelta(seconds=2),
            event_id="original-later",
            session_id="a-session",
            metadata={"emitted_from": "app.main:12"},
        ),
    ]


if __name__ == "__main__":
    target = sys.argv[1]
    build(target, sys.argv[2] if len(sys.argv) > 2 else "message_bus", sample_events())
    print(f"wrote the original module's tables with {len(sample_events())} events to {target}")
