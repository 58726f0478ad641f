"""Scheduled events and the registry of classes the store may restore.

A stored event is restored only through this registry: never by importing a
name found in the database, never by unpickling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from llmgine.errors import RegistrationError
from llmgine.messages.events import Event


@dataclass(kw_only=True)
class ScheduledEvent(Event):
    """An event delivered at ``scheduled_time`` rather than when published.

    A naive ``scheduled_time`` is local time (what ``datetime.now()`` returns);
    an aware one is the instant it names. The value is kept exactly as given.
    """

    scheduled_time: datetime = field(default_factory=datetime.now)


EVENT_CLASSES: dict[str, type[ScheduledEvent]] = {"ScheduledEvent": ScheduledEvent}
"""Registered scheduled-event classes by class name, the name stored in the database."""

_lock = threading.Lock()

S = TypeVar("S", bound=type[ScheduledEvent])


def register_scheduled_event_class(cls: S) -> S:
    """Register ``cls`` so stored events of its name can be restored; returns ``cls``.

    Use it as a decorator above ``@dataclass``. Registering the same class
    again is a no-op (a module reload counts as the same class). Raises
    `TypeError` if ``cls`` is not a ScheduledEvent subclass and
    `RegistrationError` if another class already holds the name.
    """
    if not (isinstance(cls, type) and issubclass(cls, ScheduledEvent)):
        raise TypeError(f"{cls!r} is not a subclass of ScheduledEvent")
    name = cls.__name__
    with _lock:
        existing = EVENT_CLASSES.get(name)
        if existing is not None and existing is not cls and not _same_definition(existing, cls):
            raise RegistrationError(
                f"cannot register {_qualified(cls)} as {name!r}: "
                f"{_qualified(existing)} is already registered under that name"
            )
        EVENT_CLASSES[name] = cls
    return cls


def _same_definition(a: type, b: type) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
