"""Event-log entries as rows: an event's fields, and its timestamp as the driver takes it.

Every published event passes through here when the log is on, so the common
case is kept cheap. An event's ``timestamp`` is usually the string
``datetime.now().isoformat()`` made: naive local time. Converting each one to
UTC through ```datetime.astimezone`` asks the C library for the local offset
every time; `DriverLogRows` converts each second of wall time once (zone
offsets are whole seconds) and then only checks the string's fraction and
pastes it onto the cached UTC second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from llmgine.database import codec
from llmgine.database._driver_rows import YIELD_EVERY
from llmgine.database.instants import parse_timestamp
from llmgine.database.log_json import log_json
from llmgine.errors import RejectedDataError
from llmgine.messages.events import Event

LOG_COLUMNS = (
    "event_id",
    "event_class_name",
    "event_data",
    "session_id",
    "timestamp",
    "created_at",
)
MAX_NAME = 255
"""The width of the name columns."""

_WALL = len("YYYY-MM-DDTHH:MM:SS.ffffff")
_MAX_SECONDS = 4096
"""Cached seconds of local time before the cache starts afresh."""


def log_values(event: Event, now: datetime) -> tuple[str, str, str, str | None, datetime]:
    """(event_id, class name, JSON text, session, timestamp instant) of a log entry.

    Raises `RejectedDataError` for an event id the column cannot hold; any other
    value that cannot be encoded is logged as its repr. A timestamp that is not
    an instant is logged as ``now``.
    """
    event_id, name, data, session = _fields(event)
    return event_id, name, data, session, parse_timestamp(event.timestamp) or now


def _plain(text: str) -> bool:
    """True for text with no lone surrogate, which no driver takes (checked cheaply)."""
    return text.isascii() or text == safe_text(text, len(text))


def _checked_id(event: Event) -> str:
    """``event``'s id as text; `RejectedDataError` if the column cannot hold it."""
    try:
        event_id = str(event.event_id)
    except Exception as exc:  # a hostile __str__
        raise RejectedDataError(f"event_id of {type(event).__qualname__}: {exc!r:.200}") from None
    if len(event_id) > MAX_NAME or not _plain(event_id):
        raise RejectedDataError(
            f"event_id of {type(event).__qualname__} must be at most {MAX_NAME} characters, "
            f"without lone surrogates, not {event_id!r:.80}"
        )
    return event_id


def safe_text(value: object, limit: int = MAX_NAME) -> str:
    """``value`` as text a driver can encode: lone surrogates escaped, cut to ``limit``.
    (NUL stays: SQLite keeps it, PostgreSQL refuses the entry, which is then dropped.)"""
    try:
        text = value if type(value) is str else str(value)
    except Exception:
        text = codec.safe_repr(value)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]


def _fields(event: Event) -> tuple[str, str, str, str | None]:
    event_id = event.event_id
    if type(event_id) is not str or len(event_id) > MAX_NAME or not _plain(event_id):
        event_id = _checked_id(event)
    session: str | None = event.session_id
    if session is not None and (
        type(session) is not str or len(session) > MAX_NAME or not _plain(session)
    ):
        session = safe_text(session)
    name = type(event).__name__
    return event_id, name if _plain(name) else safe_text(name), log_json(event), session


class DriverLogRows:
    """Log rows for the driver-level insert: every value text (or None), in `LOG_COLUMNS` order.

    ``to_driver`` turns an aware instant into the driver's text, which is
    ``YYYY-MM-DD`` + separator + ``HH:MM:SS.ffffff`` + suffix, ``utc_form``
    being (separator, suffix). Not thread-safe: one writer thread uses it.
    """

    def __init__(self, to_driver: Callable[[datetime], str], utc_form: tuple[str, str]) -> None:
        self._to_driver = to_driver
        self._separator, self._suffix = utc_form
        self._seconds: dict[str, str] = {}
        """A second of local wall time (``YYYY-MM-DDTHH:MM:SS``) -> the same second in UTC,
        in the driver's form (``YYYY-MM-DD`` + separator + ``HH:MM:SS``)."""
        self._zone: object = None

    def rows(
        self, events: Sequence[Event], now: datetime
    ) -> Iterator[tuple[str, str, str, str | None, str, str]]:
        """The rows of ``events``, built lazily, offering the GIL every `YIELD_EVERY` rows.

        Raises `RejectedDataError` as `log_values` does.
        """
        created = self._to_driver(now)
        zone = (os.environ.get("TZ"), time.tzname)
        if zone != self._zone:  # the process's zone changed: cached offsets are stale
            self._seconds.clear()
            self._zone = zone
        # The common case inline (this loop runs for every published event): a canonical
        # event id and session, and a timestamp in a second already converted.
        seconds, suffix, slow_stamp = self._seconds, self._suffix, self._stamp
        for start in range(0, len(events), YIELD_EVERY):
            for event in events[start : start + YIELD_EVERY]:
                event_id, value = event.event_id, event.timestamp
                session: str | None = event.session_id
                if type(event_id) is not str or len(event_id) > MAX_NAME or not _plain(event_id):
                    event_id = _checked_id(event)
                if session is not None and (
                    type(session) is not str or len(session) > MAX_NAME or not _plain(session)
                ):
                    session = safe_text(session)
                if (
                    type(value) is str
                    and len(value) == _WALL
                    and (utc := seconds.get(value[:19])) is not None
                    and value[19] == "."
                    and value[20:].isdigit()
                    and value.isascii()
                ):
                    stamp = utc + value[19:] + suffix
                else:
                    stamp = slow_stamp(value, created)
                name = type(event).__name__
                if not _plain(name):
                    name = safe_text(name)
                yield event_id, name[:MAX_NAME], log_json(event), session, stamp, created
            time.sleep(0)  # background work: let an event loop in another thread run

    def _stamp(self, value: object, created: str) -> str:
        """``value`` (an event's timestamp) as driver text; ``created`` if it is no instant."""
        if type(value) is str and len(value) == _WALL and value[19] == ".":
            # naive local time to the microsecond, as datetime.now().isoformat() writes it
            utc = self._seconds.get(value[:19])
            if utc is not None and value[20:].isdigit() and value.isascii():
                return utc + value[19:] + self._suffix
        instant = parse_timestamp(value)
        if instant is None:
            return created
        if type(value) is str and len(value) == _WALL and value[19] == ".":
            wall = _parse(value)
            if wall is not None and wall.tzinfo is None and instant.microsecond == wall.microsecond:
                if len(self._seconds) >= _MAX_SECONDS:
                    self._seconds.clear()
                utc = instant.isoformat()
                self._seconds[value[:19]] = utc[:10] + self._separator + utc[11:19]
        return self._to_driver(instant)


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
