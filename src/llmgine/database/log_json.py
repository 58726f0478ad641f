"""The event log's JSON: plain, readable, and fast enough for every published event.

Scheduled events are stored in the tagged form of `llmgine.database.codec`,
because they must come back exactly. The event log only has to be read, so it
stores plain JSON, made by orjson straight from the dataclass: strings for
datetimes (ISO 8601), UUIDs and Decimals, lists for tuples and sets, values
for Enum members, objects for nested dataclasses, and a readable repr for
anything JSON cannot hold (an exception, an arbitrary object). Non-finite
floats become ``null``, as orjson writes them. A value orjson refuses (an
integer beyond 64 bits, a string with a lone surrogate, a container that holds
itself, a dict with keys that are not strings) sends the whole event through
the tagged encoder instead, so nothing is ever refused.

orjson never sees a datetime or a time itself: it would call a third-party
``tzinfo.utcoffset()`` from C, and one that raises crashes the process. Every
datetime, date and time goes through `_readable` (``isoformat()`` in Python; a
repr if its tzinfo fails; no offset if ``utcoffset()`` returns None, which
Python calls naive), and dict keys must be strings (orjson would format a
datetime key natively).
"""

from __future__ import annotations

import base64
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

from llmgine.database import codec
from llmgine.messages.events import Event

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


def _readable(value: Any) -> Any:
    """orjson's fallback: a JSON value for what it cannot (or must not) serialise by itself."""
    if isinstance(value, date | time):
        try:
            return value.isoformat()
        except Exception:  # a tzinfo whose utcoffset() raises
            return codec.safe_repr(value)
    if isinstance(value, Decimal | timedelta):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return codec.safe_repr(value)


def log_json(event: Event) -> str:
    """``event``'s fields as plain JSON text (see the module docstring); never raises."""
    try:
        return orjson.dumps(event, default=_readable, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError, RecursionError):
        pass
    try:
        return codec.dumps(codec.encode_event(event, strict=False))
    except Exception:  # a field that cannot even be read: the event's repr, at least
        return codec.dumps({codec.TYPE_KEY: "repr", "v": codec.safe_repr(event)})
