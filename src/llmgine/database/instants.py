"""Instants: turning any datetime into the aware-UTC value that is compared.

A naive datetime is local time, as ``datetime.now()`` returns it, converted
with the process's local zone (``fold`` respected). An aware datetime is the
instant it names.
"""

from __future__ import annotations

from datetime import UTC, datetime

from llmgine.errors import UnstorableEventError

MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
"""The earliest instant the store guarantees to round-trip (inclusive)."""
MAX_INSTANT = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
"""The latest instant the store guarantees to round-trip (inclusive)."""


def utc_now() -> datetime:
    """The current instant, aware UTC."""
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime.

    Raises `UnstorableEventError` for a value that is not a datetime, is out of
    range, or whose tzinfo fails to give an offset.
    """
    if not isinstance(value, datetime):
        raise UnstorableEventError(f"{_show(value)} is a {type(value).__name__}, not a datetime")
    try:
        instant = value.astimezone(UTC)
    except Exception as exc:  # overflow, or a third-party tzinfo that raises
        raise UnstorableEventError(f"{_show(value)} cannot be converted to UTC: {exc}") from exc
    if not MIN_INSTANT <= instant <= MAX_INSTANT:
        raise UnstorableEventError(
            f"{_show(value)} is outside the supported range "
            f"{MIN_INSTANT.isoformat()} to {MAX_INSTANT.isoformat()}"
        )
    return instant


def _show(value: object) -> str:
    """``repr(value)`` for a message, or a placeholder where a hostile repr raises."""
    try:
        return repr(value)[:200]
    except Exception:
        return f"<{type(value).__qualname__}>"


def parse_timestamp(value: object) -> datetime | None:
    """An event's ``timestamp`` (ISO string or datetime) as aware UTC, or None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    try:
        return to_utc(value)
    except UnstorableEventError:
        return None
