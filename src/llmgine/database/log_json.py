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

orjson only ever sees what this module has checked: dicts with string keys,
lists, tuples and scalars of the exact built-in types. It would otherwise call
code of the event's values from C (a third-party ``tzinfo.utcoffset()``, an
Enum's ``value``, a slots dataclass's missing attribute) and crash the process
when that code raises. Anything else is converted here first, in Python: a
datetime with ``isoformat()`` (a repr if its tzinfo fails; no offset if
``utcoffset()`` returns None, which Python calls naive), an Enum member as its
value, a dataclass as an object of its fields, and a repr where that fails.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from llmgine.database import codec
from llmgine.messages.events import Event

_SCALARS = frozenset({str, int, float, bool, type(None)})
_SAFE_ZONES = frozenset({type(None), timezone, ZoneInfo})
"""tzinfo types whose ``utcoffset`` is the standard library's own and never raises."""
_MAX_DEPTH = codec.MAX_DEPTH
"""Deeper than this (or a cycle), a value is logged as its repr."""
_names: dict[type, tuple[str, ...]] = {}


class _NotPlain(Exception):
    """A dict key that is not a string: the event goes through the tagged encoder."""


def _field_names(cls: type) -> tuple[str, ...]:
    names = _names.get(cls)
    if names is None:
        names = _names[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _is_plain(value: Any, depth: int = 0) -> bool:
    """True if orjson can write ``value`` without calling any code of the value's own;
    written out in loops, as this runs for every logged event."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is datetime or kind is time:  # stdlib zones only: a third-party one may raise
        return type(value.tzinfo) in _SAFE_ZONES
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not _is_plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS and not _is_plain(item, depth + 1):
                return False
        return True
    return kind is date or kind is uuid.UUID


def _readable(value: Any, depth: int) -> Any:
    """``value`` as plain JSON values (see the module docstring), decided in Python."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= _MAX_DEPTH:
        return codec.safe_repr(value)
    try:
        if kind is dict:
            if not all(type(k) is str for k in value):
                raise _NotPlain
            return {k: _readable(v, depth + 1) for k, v in value.items()}
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            return [_readable(v, depth + 1) for v in value]
        if isinstance(value, date | time):  # datetime too
            return value.isoformat()
        if isinstance(value, Enum):
            return _readable(value.value, depth + 1)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = _field_names(type(value))
            return {name: _readable(getattr(value, name), depth + 1) for name in names}
        if isinstance(value, Decimal | timedelta | uuid.UUID):
            return str(value)
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode("ascii")
        for base in (str, int, float):  # a subclass: its plain value
            if isinstance(value, base):
                return base(value)
    except _NotPlain:
        raise
    except Exception:  # the value's own code raised: a tzinfo, a property, a __str__
        pass
    return codec.safe_repr(value)


def log_json(event: Event) -> str:
    """``event``'s fields as plain JSON text (see the module docstring); never raises."""
    try:
        fields = getattr(event, "__dict__", None)  # what orjson writes of a dataclass
        if type(fields) is not dict:
            fields = {name: getattr(event, name) for name in _field_names(type(event))}
        for item in fields.values():  # the first level inline: most values are scalars
            if type(item) not in _SCALARS and not _is_plain(item, 1):
                fields = _readable(fields, 0)
                break
        return orjson.dumps(fields).decode()  # a key that is not a string: JSONEncodeError
    except (_NotPlain, orjson.JSONEncodeError, TypeError, RecursionError, AttributeError):
        pass
    try:
        return codec.dumps(codec.encode_event(event, strict=False))
    except Exception:  # a field that cannot even be read: the event's repr, at least
        return codec.dumps({codec.TYPE_KEY: "repr", "v": codec.safe_repr(event)})
