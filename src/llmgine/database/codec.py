"""Events to JSON payloads and back, without losing a field, a type or a zone.

A payload is a JSON object of every dataclass field of the event. JSON's own
types are stored as themselves; any other value is a tagged object
``{"$type": <tag>, ...}``: datetime, date, time (with a naive, fixed-offset or
``ZoneInfo`` zone, microseconds and ``fold``), timedelta, UUID, Decimal,
bytes, bytearray, tuple, set, frozenset, Enum members, nested dataclasses,
non-finite floats, integers beyond 64 bits, and dicts whose keys are not all
strings (or that contain the key ``"$type"`` themselves).

Enum and dataclass values are restored only as classes named in the event
class's field annotations (followed through nested dataclasses, containers
and unions): nothing is ever imported by name. A scheduled event holding any
other value is rejected by `encode_event` with an `UnstorableEventError`
naming the class and the field, and so is a subclass of a JSON type (an
``OrderedDict``, a ``NamedTuple``), which would come back as its base type.
The event log encodes with ``strict=False``, which stores such a subclass as
its base type and a readable repr in place of any other such value instead.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import json
import math
import re
import sys
import typing
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, Flag
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from llmgine.errors import DecodeError, UnstorableEventError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import EVENT_CLASSES, ScheduledEvent

TYPE_KEY = "$type"
_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types a decoded payload field holds as itself, with nothing to look at."""
_INT64 = 2**63
MAX_DEPTH = 100
"""Containers (lists, dicts, tuples, sets, dataclasses) nested deeper than this are refused
(the event log stores a repr instead): a cycle or absurd nesting fails here, with a clear
error, rather than in the JSON encoder, the database or the decoder after a restart."""


_orjson: Any = orjson
"""orjson, about 30x the standard library's speed here; the standard library still
handles what orjson refuses (lone surrogates). Tests set this to None to run without it."""


def dumps(value: Any) -> str:
    """JSON text of an encoded payload; `UnstorableEventError` if it is not JSON-safe."""
    if _orjson is not None:
        try:
            return str(_orjson.dumps(value).decode())
        except TypeError:  # lone surrogates: the stdlib escapes them
            pass
    try:
        return json.dumps(_unpaired(value), separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise UnstorableEventError(f"payload is not JSON: {_error_text(exc)}") from None


_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _unpaired(value: Any) -> Any:
    """``value`` with every string holding a high surrogate followed by a low one tagged as
    code points: JSON escapes them as ``\\ud800\\udc00``, which every parser reads back as
    one character (U+10000). Keys holding such a pair turn their dict into the tagged form."""
    kind = type(value)
    if kind is str:
        if _SURROGATE_PAIR.search(value) is None:
            return value
        return {TYPE_KEY: "str", "v": [ord(char) for char in value]}
    if kind is list:
        return [_unpaired(item) for item in value]
    if kind is dict:
        if any(_SURROGATE_PAIR.search(key) for key in value):
            return {TYPE_KEY: "dict", "v": [[_unpaired(k), _unpaired(v)] for k, v in value.items()]}
        return {key: _unpaired(item) for key, item in value.items()}
    return value


def loads(text: str | bytes) -> Any:
    """The inverse of `dumps`."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:  # escaped lone surrogates: the stdlib accepts them
            pass
    return json.loads(text)


class _Unencodable(Exception):
    """A value the codec cannot store; carries the path to it for the message."""

    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why
        self.path: list[str] = []


class _TooDeep(Exception):
    """Containers nested past `MAX_DEPTH`: the whole field is refused (or its repr logged)."""


def encode_event(event: Event, *, strict: bool = True) -> dict[str, Any]:
    """The JSON-safe payload of every dataclass field of ``event``.

    With ``strict`` (the default, for scheduled events) a value that cannot be
    restored raises `UnstorableEventError` naming the class and field, and so
    do fields declared without @dataclass. Otherwise (the event log) such a
    value is stored as ``{"$type": "repr"}`` and such fields are stored too.
    """
    cls = type(event)
    plan = _plan(cls)
    names = plan.field_names
    if strict:
        check_attributes(event, plan)
    if plan.undeclared:
        if strict:
            raise UnstorableEventError(
                f"{cls.__qualname__} declares fields {sorted(plan.undeclared)} without "
                "@dataclass; decorate the class with @dataclass so they are stored"
            )
        names += tuple(sorted(name for name in plan.undeclared if hasattr(event, name)))
    encoder = _Encoder(plan.known if strict else None)
    payload: dict[str, Any] = {}
    for name in names:
        value = getattr(event, name)
        kind = type(value)
        if kind is str or value is None or kind is bool:  # most fields: stored as they are
            payload[name] = value
            continue
        try:
            payload[name] = encoder.encode(value)
        except _Unencodable as exc:
            where = name + "".join(reversed(exc.path))
            raise UnstorableEventError(
                f"cannot store {cls.__qualname__}.{where}: {exc.why}"
            ) from None
        except (RecursionError, _TooDeep):  # a container that holds itself, or absurd nesting
            if strict:
                raise UnstorableEventError(
                    f"cannot store {cls.__qualname__}.{name}: it contains itself "
                    f"or is nested more than {MAX_DEPTH} levels deep"
                ) from None
            payload[name] = {TYPE_KEY: "repr", "v": safe_repr(value)}
    return payload


def decode_event(class_name: str, payload: Any, event_id: str | None = None) -> ScheduledEvent:
    """The scheduled event ``payload`` encodes, of the registered class ``class_name``.

    ``event_id``: the stored row's own id, which is the event's identity whatever
    the payload says. Raises `DecodeError` for an unregistered class or a payload
    that does not fit the class (no ``scheduled_time``, missing required field,
    unknown tag, bad value): nothing a row lacks is filled in with a default.
    """
    cls = EVENT_CLASSES.get(class_name)
    if cls is None:
        raise DecodeError(f"unknown event class {class_name!r}: it is not registered")
    if not isinstance(payload, dict):
        raise DecodeError(f"payload is a {type(payload).__name__}, not a JSON object")
    if "scheduled_time" not in payload:
        raise DecodeError(f"payload has no scheduled_time, which {class_name} requires")
    if event_id is not None:
        payload = {**payload, "event_id": event_id}
    plan = _plan(cls)
    if _own_from_dict(cls) and any(
        k not in plan.init_names and k not in plan.non_init_names for k in payload
    ):
        return _from_dict(cls, payload)
    try:
        known = plan.known
        values = {
            key: value if type(value) in _PLAIN else _decode(value, known)
            for key, value in payload.items()
        }
        if isinstance(values.get("scheduled_time"), str):  # rows written by the original module
            values["scheduled_time"] = datetime.fromisoformat(values["scheduled_time"])
        event = cls(**{k: v for k, v in values.items() if k in plan.init_names})
        for name in plan.non_init_names:
            if name in values:
                object.__setattr__(event, name, values[name])
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"payload does not fit {class_name}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(event.scheduled_time, datetime):
        raise DecodeError(f"scheduled_time is a {type(event.scheduled_time).__name__}")
    return event


def check_attributes(event: Event, plan: _Plan | None = None) -> None:
    """Raise `UnstorableEventError` if ``event`` holds attributes that are not dataclass
    fields (set by an ``__init__`` of its own, say): they would not be stored."""
    plan = plan or _plan(type(event))
    attributes = getattr(event, "__dict__", None)
    if attributes and len(attributes) > len(plan.field_names):
        extra = sorted(set(attributes) - set(plan.field_names))
        if extra:
            raise UnstorableEventError(
                f"{type(event).__qualname__} sets attributes {extra} that are not dataclass "
                "fields, so they would be lost: declare them as fields of a @dataclass"
            )


def _own_from_dict(cls: type[ScheduledEvent]) -> bool:
    return getattr(cls.from_dict, "__func__", None) is not getattr(
        Event.from_dict, "__func__", None
    )


def _from_dict(cls: type[ScheduledEvent], payload: dict[str, Any]) -> ScheduledEvent:
    """A row holding keys ``cls`` does not declare, of a class with its own ``from_dict``:
    one the original module stored from the class's ``to_dict`` override. Restored
    through that ``from_dict``, with the payload as stored. (Without one, such keys are
    fields the class no longer has, and are ignored.)"""
    try:
        event = cls.from_dict(dict(payload))
    except Exception as exc:
        raise DecodeError(f"{cls.__name__}.from_dict failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(event, cls) or not isinstance(event.scheduled_time, datetime):
        raise DecodeError(f"{cls.__name__}.from_dict did not return one with a due time")
    return event


def decode_value(value: Any, known: dict[str, type] | None = None) -> Any:
    """Decode one encoded value; Enum and dataclass tags need their class in ``known``."""
    return _decode(value, known or {})


# --- per-class plans -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Plan:
    field_names: tuple[str, ...]
    init_names: frozenset[str]
    non_init_names: tuple[str, ...]
    known: dict[str, type]
    """Enum and dataclass classes reachable from the annotations, by qualified name."""
    undeclared: frozenset[str]


_plans: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    plan = _plans.get(cls)
    if plan is None:
        fields = dataclasses.fields(cls)
        plan = _Plan(
            field_names=tuple(f.name for f in fields),
            init_names=frozenset(f.name for f in fields if f.init),
            non_init_names=tuple(f.name for f in fields if not f.init),
            known=_reachable_classes(cls),
            undeclared=_undeclared_fields(cls) - {f.name for f in fields},
        )
        _plans[cls] = plan
    return plan


def _undeclared_fields(cls: type) -> frozenset[str]:
    """Annotated names of event classes in ``cls``'s MRO that lack their own @dataclass."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if issubclass(klass, Event) and "__dataclass_fields__" not in vars(klass):
            hints = inspect.get_annotations(klass)
            names.update(name for name, hint in hints.items() if not _is_class_var(hint))
    return frozenset(names)


def _is_class_var(hint: Any) -> bool:
    if isinstance(hint, str):  # postponed annotation, judged as dataclasses does
        return hint.split("[", 1)[0].strip() in {"ClassVar", "typing.ClassVar"}
    return hint is typing.ClassVar or typing.get_origin(hint) is typing.ClassVar


def qualified_name(cls: type) -> str:
    """The name a class is stored under: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _reachable_classes(root: type) -> dict[str, type]:
    found: dict[str, type] = {}
    pending: list[Any] = [root]
    seen: dict[int, Any] = {}  # keeps what it has seen alive, so no id is reused meanwhile
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen[id(item)] = item
        if isinstance(item, Enum):  # Literal[Color.RED] names Color
            item = type(item)
        if isinstance(item, type) and (issubclass(item, Enum) or dataclasses.is_dataclass(item)):
            found[qualified_name(item)] = item
            if dataclasses.is_dataclass(item):
                pending.extend(_field_types(item))
        pending.extend(typing.get_args(item))
    return found


def _field_types(cls: type) -> Iterator[Any]:
    try:
        yield from typing.get_type_hints(cls).values()
        return
    except Exception:  # unresolvable forward references: take what resolves
        pass
    module = sys.modules.get(cls.__module__)
    namespace = vars(module) if module is not None else {}
    for f in dataclasses.fields(cls):
        hint: Any = f.type
        if isinstance(hint, str):
            try:
                hint = eval(hint, dict(namespace), dict(vars(cls)))
            except Exception:
                continue
        yield hint


# --- encoding -----------------------------------------------------------------------


def _zone_fields(tz: Any) -> dict[str, Any]:
    if tz is None:
        return {}
    if type(tz) is timezone:
        return _fixed_offset_fields(tz.utcoffset(None), tz.tzname(None))
    if isinstance(tz, ZoneInfo) and tz.key is not None:
        return {"zone": tz.key}
    raise _Unencodable(
        tz, f"unsupported tzinfo {type(tz).__name__}; use zoneinfo.ZoneInfo or datetime.timezone"
    )


@functools.lru_cache(maxsize=512)
def _fixed_offset_fields(offset: timedelta, name: str) -> dict[str, Any]:
    """Cached by offset *and* name: timezones that differ only in name compare equal."""
    fields: dict[str, Any] = {"offset": offset // timedelta(microseconds=1)}
    if name != timezone(offset).tzname(None):
        fields["name"] = name
    return fields


_WALL = {"datetime": 26, "time": 15}
"""Length of the wall-clock part of ``isoformat(timespec="microseconds")``: fixed for years
1 to 9999, so the offset an aware value appends can be cut off without copying the value."""


def _clock(tag: str, value: datetime | time) -> dict[str, Any]:
    tz = value.tzinfo
    wall = value.isoformat(timespec="microseconds")
    encoded: dict[str, Any] = {TYPE_KEY: tag, "v": wall if tz is None else wall[: _WALL[tag]]}
    if tz is not None:
        encoded.update(_zone_fields(tz))
    if value.fold:
        encoded["fold"] = 1
    return encoded


class _Encoder:
    def __init__(self, known: dict[str, type] | None) -> None:
        self.known = known  # None: lenient (event log)
        self.depth = 0

    def encode(self, value: Any) -> Any:
        depth = self.depth
        try:
            return self._encode(value)
        except _Unencodable:
            if self.known is None:
                self.depth = depth
                return {TYPE_KEY: "repr", "v": safe_repr(value)}
            raise
        except (RecursionError, _TooDeep):
            raise
        except Exception as exc:  # the value's own code failed (a tzinfo, an int too long)
            if self.known is None:
                self.depth = depth
                return {TYPE_KEY: "repr", "v": safe_repr(value)}
            raise _Unencodable(value, f"{type(value).__qualname__}: {_error_text(exc)}") from None

    def _enter(self, value: Any) -> None:
        """One container level deeper; `_Unencodable` past `MAX_DEPTH` (or a cycle)."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooDeep

    def _encode(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            return value if -_INT64 <= value < _INT64 else {TYPE_KEY: "int", "v": _int_text(value)}
        if kind is float:
            return value if math.isfinite(value) else {TYPE_KEY: "float", "v": repr(value)}
        if kind is dict:
            return self._dict(value)
        if kind is list:
            return self._items(value)
        handler = _ENCODERS.get(kind)
        if handler is not None:
            return handler(self, value)
        return self._other(value)

    def _items(self, values: Any) -> list[Any]:
        self._enter(values)
        out = []
        for index, item in enumerate(values):
            try:
                out.append(self.encode(item))
            except _Unencodable as exc:
                exc.path.append(f"[{index}]")
                raise
        self.depth -= 1
        return out

    def _dict(self, value: dict[Any, Any]) -> Any:
        self._enter(value)
        plain = TYPE_KEY not in value and all(type(k) is str for k in value)
        out: dict[str, Any] = {}
        pairs: list[list[Any]] = []
        for key, item in value.items():
            try:
                if plain:
                    out[key] = self.encode(item)
                else:
                    pairs.append([self.encode(key), self.encode(item)])
            except _Unencodable as exc:
                exc.path.append(f"[{safe_repr(key)}]")
                raise
        self.depth -= 1
        return out if plain else {TYPE_KEY: "dict", "v": pairs}

    def _tagged_items(self, tag: str, values: Any) -> dict[str, Any]:
        return {TYPE_KEY: tag, "v": self._items(values)}

    def _other(self, value: Any) -> Any:
        cls = type(value)
        if isinstance(value, Enum):
            self._check_known(cls)
            if isinstance(value, Flag):  # a combination of flags has no single name
                flags = self.encode(value.value)
                return {TYPE_KEY: "enum", "cls": qualified_name(cls), "value": flags}
            return {TYPE_KEY: "enum", "cls": qualified_name(cls), "name": value.name}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            self._check_known(cls)
            return self._dataclass(value)
        for base, encode in _SUBCLASS_FALLBACKS:
            if isinstance(value, base):
                if self.known is not None:  # it would come back as the base type
                    raise _Unencodable(
                        value,
                        f"{cls.__qualname__} is a subclass of {base.__name__} and would be "
                        f"restored as a plain {base.__name__}; store a {base.__name__}",
                    )
                return encode(self, value)  # the event log keeps the value, not the type
        raise _Unencodable(value, f"values of type {cls.__qualname__} cannot be stored")

    def _check_known(self, cls: type) -> None:
        if self.known is not None and self.known.get(qualified_name(cls)) is not cls:
            raise _Unencodable(
                cls,
                f"{cls.__qualname__} is not named in the event class's field annotations, "
                "so it could not be restored; annotate the field with it",
            )

    def _dataclass(self, value: Any) -> dict[str, Any]:
        self._enter(value)
        fields = {}
        for f in dataclasses.fields(value):
            try:
                fields[f.name] = self.encode(getattr(value, f.name))
            except _Unencodable as exc:
                exc.path.append(f".{f.name}")
                raise
        self.depth -= 1
        return {TYPE_KEY: "dataclass", "cls": qualified_name(type(value)), "v": fields}


def _int_text(value: int) -> str:
    """``str(value)``; `_Unencodable` past the interpreter's int-to-str digit limit."""
    try:
        return str(value)
    except ValueError:
        raise _Unencodable(
            value,
            f"an integer of about {value.bit_length() * 30103 // 100000} digits is over the "
            f"interpreter's limit of {sys.get_int_max_str_digits()} (sys.set_int_max_str_digits)",
        ) from None


def _error_text(exc: BaseException) -> str:
    """``type: message`` of an error raised by a value's own code, which may be hostile."""
    try:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    except Exception:
        return type(exc).__name__


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder if repr itself fails."""
    try:
        return repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__qualname__}: {type(exc).__name__}>"


_ENCODERS: dict[type, Callable[[_Encoder, Any], Any]] = {
    datetime: lambda _, v: _clock("datetime", v),
    time: lambda _, v: _clock("time", v),
    date: lambda _, v: {TYPE_KEY: "date", "v": v.isoformat()},
    timedelta: lambda _, v: {TYPE_KEY: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    uuid.UUID: lambda _, v: {TYPE_KEY: "uuid", "v": str(v)},
    Decimal: lambda _, v: {TYPE_KEY: "decimal", "v": str(v)},
    bytes: lambda _, v: {TYPE_KEY: "bytes", "v": base64.b64encode(v).decode("ascii")},
    bytearray: lambda _, v: {TYPE_KEY: "bytearray", "v": base64.b64encode(v).decode("ascii")},
    tuple: lambda e, v: e._tagged_items("tuple", v),
    set: lambda e, v: e._tagged_items("set", v),
    frozenset: lambda e, v: e._tagged_items("frozenset", v),
}

_SUBCLASS_FALLBACKS: tuple[tuple[type, Callable[[_Encoder, Any], Any]], ...] = (
    (int, lambda e, v: e.encode(int(v))),
    (float, lambda e, v: e.encode(float(v))),
    (str, lambda _, v: str(v)),
    (dict, lambda e, v: e._dict(dict(v))),
    (list, lambda e, v: e._items(v)),
    (tuple, lambda e, v: e._tagged_items("tuple", v)),
)


# --- decoding -----------------------------------------------------------------------


def _zone(value: dict[str, Any]) -> Any:
    if "zone" in value:
        return ZoneInfo(value["zone"])
    if "offset" in value:
        offset = timedelta(microseconds=value["offset"])
        return timezone(offset, value["name"]) if "name" in value else timezone(offset)
    return None


def _decode_clock(value: dict[str, Any], parse: Callable[[str], Any]) -> Any:
    parsed = parse(value["v"])
    if len(value) == 2:  # {"$type", "v"}: naive, fold 0, nothing to replace
        return parsed
    return parsed.replace(tzinfo=_zone(value), fold=value.get("fold", 0))


def _decode_class(value: dict[str, Any], known: dict[str, type]) -> type:
    cls = known.get(value["cls"])
    if cls is None:
        raise DecodeError(f"class {value['cls']!r} is not named in the event class's annotations")
    return cls


def _decode_enum(value: dict[str, Any], known: dict[str, type]) -> Any:
    cls: Any = _decode_class(value, known)
    if not issubclass(cls, Enum):
        raise DecodeError(f"class {value['cls']!r} is not an Enum")
    return cls(_decode(value["value"], known)) if "value" in value else cls[value["name"]]


def _decode_dataclass(value: dict[str, Any], known: dict[str, type]) -> Any:
    cls = _decode_class(value, known)
    if not dataclasses.is_dataclass(cls):
        raise DecodeError(f"class {value['cls']!r} is not a dataclass")
    fields = {k: _decode(v, known) for k, v in value["v"].items()}
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    instance = cls(**{k: v for k, v in fields.items() if k in init})
    for name in fields.keys() - init:
        object.__setattr__(instance, name, fields[name])
    return instance


_DECODERS: dict[str, Callable[[dict[str, Any], dict[str, type]], Any]] = {
    "datetime": lambda v, _: _decode_clock(v, datetime.fromisoformat),
    "time": lambda v, _: _decode_clock(v, time.fromisoformat),
    "date": lambda v, _: date.fromisoformat(v["v"]),
    "timedelta": lambda v, _: timedelta(*v["v"]),
    "uuid": lambda v, _: uuid.UUID(v["v"]),
    "decimal": lambda v, _: Decimal(v["v"]),
    "bytes": lambda v, _: base64.b64decode(v["v"], validate=True),
    "bytearray": lambda v, _: bytearray(base64.b64decode(v["v"], validate=True)),
    "tuple": lambda v, k: tuple(_decode(i, k) for i in v["v"]),
    "set": lambda v, k: {_decode(i, k) for i in v["v"]},
    "frozenset": lambda v, k: frozenset(_decode(i, k) for i in v["v"]),
    "dict": lambda v, k: {_decode(key, k): _decode(item, k) for key, item in v["v"]},
    "int": lambda v, _: int(v["v"]),
    "float": lambda v, _: float(v["v"]),
    "enum": _decode_enum,
    "dataclass": _decode_dataclass,
    "repr": lambda v, _: v["v"],
    "str": lambda v, _: "".join(map(chr, v["v"])),
}


def _decode(value: Any, known: dict[str, type]) -> Any:
    kind = type(value)
    if kind is dict:
        tag = value.get(TYPE_KEY)
        if tag is None:
            return {key: _decode(item, known) for key, item in value.items()}
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise DecodeError(f"unknown value tag {tag!r}")
        return decoder(value, known)
    if kind is list:
        return [_decode(item, known) for item in value]
    return value
