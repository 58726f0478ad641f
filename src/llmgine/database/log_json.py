"""The event log's JSON: plain, readable, and fast enough for every published event.

Scheduled events are stored in the tagged form of `llmgine.database.codec`,
because they must come back exactly. The event log only has to be read, so it
stores plain JSON, made by orjson straight from the dataclass: strings for
datetimes (ISO 8601), UUIDs and Decimals, lists for tuples and sets, values
for Enum members, objects for nested dataclasses, and a readable repr for
anything JSON cannot hold (an exception, an arbitrary object). Non-finite
floats become ``null``, as orjson writes them. A value orjson refuses (an
integer beyond 64 bits, a string with a lone surrogate, a container that holds
itself) sends the whole event through the tagged encoder instead, so nothing
is ever refused.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson

from llmgine.database import codec
from llmgine.messages.events import Event

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _readable(value: Any) -> Any:
    """orjson's fallback: a JSON value for what it cannot serialise by itself."""
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
        return codec.dumps(codec.encode_event(event, strict=False))
