"""The event classes the conformance suite stores, registered under distinctive names.

Every class a payload may hold (Enum, nested dataclass) is defined at module
level and named in a field annotation, so the codec can restore it: classes
are restored only from what an event class's annotations name, never by
importing a name found in the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any

from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent, register_scheduled_event_class


class ConformancePriority(Enum):
    """An Enum field value."""

    LOW = "low"
    HIGH = "high"


class ConformanceLevel(IntEnum):
    """An IntEnum, which must not come back as a plain int."""

    ONE = 1
    TWO = 2


@dataclass(frozen=True)
class ConformanceAddress:
    """A frozen dataclass nested inside another."""

    street: str
    number: int
    zone: str | None = None


@dataclass
class ConformanceContact:
    """A dataclass holding dataclasses, in a field and in a list."""

    name: str
    address: ConformanceAddress
    previous: list[ConformanceAddress] = field(default_factory=list)


@register_scheduled_event_class
@dataclass(kw_only=True)
class ConformanceReminder(ScheduledEvent):
    """A scheduled event subclass with extra fields of many types."""

    text: str = ""
    count: int = 0
    ratio: float = 0.0
    done: bool = False
    amount: Decimal = Decimal("0")
    ref: uuid.UUID = field(default_factory=uuid.uuid4)
    tags: tuple[str, ...] = ()
    labels: frozenset[str] = frozenset()
    blob: bytes = b""
    on: date | None = None
    at: time | None = None
    every: timedelta | None = None
    remind_at: datetime | None = None
    moments: list[datetime] = field(default_factory=list)
    priority: ConformancePriority = ConformancePriority.LOW
    level: ConformanceLevel = ConformanceLevel.ONE
    contact: ConformanceContact | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@register_scheduled_event_class
@dataclass(kw_only=True)
class ConformancePayload(ScheduledEvent):
    """Carries any value in ``value``; the other annotations name the classes it may hold."""

    value: Any = None
    priority: ConformancePriority | None = None
    level: ConformanceLevel | None = None
    contact: ConformanceContact | None = None


@register_scheduled_event_class
@dataclass(kw_only=True)
class ConformanceRequired(ScheduledEvent):
    """A scheduled event with a required field, so a payload can lack it."""

    code: str


@dataclass(kw_only=True)
class ConformanceLogged(Event):
    """An event-log event; ``thing`` may hold a value no codec can encode."""

    note: str = ""
    thing: Any = None
