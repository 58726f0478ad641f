"""The ORM models: the single definition of llmgine's tables.

The models describe the tables under their base names. A store works on
copies of these tables named for its configuration (`tables_for`): on
PostgreSQL the copies live in the configured schema; on SQLite, which has no
schemas, the schema name becomes a table prefix (``message_bus`` gives
``message_bus_scheduled_events``; ``a.b`` gives ``a_b_scheduled_events``).
Copies keep several stores with different names safe in one process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Constraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import SchemaConst
from sqlalchemy.types import TypeEngine

from llmgine.database.instants import to_utc, utc_now
from llmgine.errors import ConfigurationError

SCHEMA_VERSION = 1
"""The version of the tables this code writes; kept in ``llmgine_meta``."""

_NATIVE_TZ_DIALECTS = frozenset({"postgresql"})
RETAIN_SCHEMA = SchemaConst.RETAIN_SCHEMA


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored so the database compares instants, returned aware UTC.

    PostgreSQL stores ``timestamp with time zone``; other databases store the
    naive UTC value in a fixed-width form, so ``<`` and ``ORDER BY`` compare
    instants there too. Naive input is local time.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(DateTime(timezone=dialect.name in _NATIVE_TZ_DIALECTS))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        instant = to_utc(value)
        return instant if dialect.name in _NATIVE_TZ_DIALECTS else instant.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of llmgine's models."""


class ScheduledEventRecord(Base):
    """A scheduled event waiting for its due instant."""

    __tablename__ = "scheduled_events"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255))
    event_class_name: Mapped[str] = mapped_column(String(255))
    event_data: Mapped[Any] = mapped_column(JSON)
    scheduled_time: Mapped[datetime] = mapped_column(UTCDateTime)
    """The due instant."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    """When the row was added; the current time unless given."""
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("event_id", name="uq_scheduled_events_event_id"),
        Index("ix_scheduled_events_due", "scheduled_time", "id"),
        Index(
            "ix_scheduled_events_owner",
            "owner",
            sqlite_where=owner.isnot(None),
            postgresql_where=owner.isnot(None),
        ),
    )


class EventRecord(Base):
    """One published event in the event log."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255))
    event_class_name: Mapped[str] = mapped_column(String(255))
    event_data: Mapped[str] = mapped_column(Text)
    """The payload as JSON text."""
    session_id: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    """When the row was added; the current time unless given."""

    __table_args__ = (
        UniqueConstraint("event_id", name="uq_event_log_event_id"),
        Index("ix_event_log_timestamp", "timestamp"),
        Index("ix_event_log_session_id", "session_id"),
    )


class MetaRecord(Base):
    """Facts about the stored tables, such as ``schema_version``."""

    __tablename__ = "llmgine_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A schema name or table prefix: letters, digits and underscores, not starting with a digit."""
MAX_SCHEMA_BYTES = 63
"""PostgreSQL's identifier limit; a longer name would be silently cut."""
RESERVED_SCHEMAS = frozenset({"information_schema"})
"""System schemas llmgine never writes to, besides every ``pg_*`` one (``pg_catalog``,
``pg_toast``...), which PostgreSQL reserves. Compared without regard to case."""


@dataclass(frozen=True)
class Naming:
    """Where a store's tables live: a database schema, a table-name prefix, or neither.

    Validated here, which every store goes through (`DatabaseConfig.naming` builds one; so
    does anyone who gives a store a naming of their own): raises `ConfigurationError` for
    an empty or reserved schema, or a schema or prefix that is not an `IDENTIFIER`.
    """

    schema: str | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.schema is not None:
            check_schema_name(self.schema)
        if not isinstance(self.prefix, str) or (
            self.prefix and not IDENTIFIER.fullmatch(self.prefix)
        ):
            raise ConfigurationError(
                f"table prefix {self.prefix!r} is not a valid name: use letters, digits and "
                "underscores, not starting with a digit"
            )


def check_schema_name(schema: object) -> None:
    """Raise `ConfigurationError` unless ``schema`` is a database schema llmgine may own."""
    if not isinstance(schema, str) or not schema:
        raise ConfigurationError(
            f"schema name {schema!r} is empty: name a schema (the tables would otherwise land "
            "in whichever schema the search_path names first, usually public)"
        )
    if not IDENTIFIER.fullmatch(schema):
        raise ConfigurationError(
            f"schema name {schema!r} is not a valid name: use letters, digits and "
            "underscores, not starting with a digit"
        )
    if len(schema.encode()) > MAX_SCHEMA_BYTES:
        raise ConfigurationError(
            f"schema name {schema!r} is longer than PostgreSQL's {MAX_SCHEMA_BYTES} bytes"
        )
    folded = schema.lower()
    if folded in RESERVED_SCHEMAS or folded.startswith("pg_"):
        raise ConfigurationError(
            f"schema name {schema!r} is reserved for the database's own catalog; "
            "choose another (the default is message_bus)"
        )


@dataclass(frozen=True)
class Tables:
    """One configuration's copies of the model tables."""

    metadata: MetaData
    scheduled: Table
    log: Table
    meta: Table


@functools.cache
def tables_for(naming: Naming) -> Tables:
    """The model tables renamed for ``naming``; cached, so one object per naming.

    Index and constraint names carry the prefix too: SQLite requires index
    names unique per database, PostgreSQL per schema.
    """
    metadata = MetaData(schema=naming.schema)
    copies = []
    for model in (ScheduledEventRecord, EventRecord, MetaRecord):
        source = model.__table__
        assert isinstance(source, Table)
        schema: Any = RETAIN_SCHEMA if naming.schema is None else naming.schema
        copy = source.to_metadata(metadata, schema=schema, name=naming.prefix + source.name)
        named: list[Index | Constraint] = [*copy.indexes, *copy.constraints]
        for item in named:
            if isinstance(item.name, str) and item.name.startswith(("ix_", "uq_")):
                kind, _, rest = item.name.partition("_")
                item.name = f"{kind}_{naming.prefix}{rest}"
        copies.append(copy)
    return Tables(metadata, *copies)
