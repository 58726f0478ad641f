"""Hypothesis strategies for llmgine stores: datetimes, payload values and scheduled events.

Every strategy stays inside what llmgine promises to round-trip, so a failure
found with them is a bug in the store, not in the data:

    from hypothesis import given
    from llmgine_conformance import strategies as lst

    @given(lst.scheduled_events())
    def test_my_store_keeps_events(event): ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from llmgine.database.instants import MAX_INSTANT, MIN_INSTANT
from llmgine_conformance.events import ConformanceReminder

EARLIEST_WALL = datetime(1, 1, 3)
"""The earliest wall clock the strategies draw: in range under any UTC offset."""
LATEST_WALL = datetime(9999, 12, 29, 23, 59, 59, 999999)
"""The latest wall clock the strategies draw: in range under any UTC offset."""

AMBIGUOUS_WALL_TIMES = (
    datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo("America/New_York")),
    datetime(2022, 10, 30, 1, 15, tzinfo=ZoneInfo("Europe/London")),
    datetime(2023, 4, 2, 1, 45, tzinfo=ZoneInfo("Australia/Lord_Howe")),
    datetime(2023, 4, 2, 3, 0, 0, 1, tzinfo=ZoneInfo("Pacific/Chatham")),
)
"""Wall clocks that occur twice in their zone, so ``fold`` decides the instant."""


def datetime_identity(value: datetime) -> tuple[object, ...]:
    """What a store must keep of a datetime: wall clock, ``fold`` and zone (kind, key,
    offset, name). Two datetimes naming one instant can differ here; compare these
    tuples to check a round trip."""
    zone = value.tzinfo
    if zone is None:
        kind: tuple[object, ...] = ("naive",)
    elif isinstance(zone, ZoneInfo):
        kind = ("ZoneInfo", zone.key)
    else:
        kind = (type(zone).__name__, zone.utcoffset(None), zone.tzname(None))
    return (value.replace(tzinfo=None).isoformat(), value.fold, kind)


def fixed_offsets() -> st.SearchStrategy[timezone]:
    """`datetime.timezone` objects: any offset strictly inside +-24 h, to the second,
    sometimes with microseconds, sometimes with a name of their own."""
    seconds = st.integers(min_value=-86399, max_value=86399).map(lambda s: timedelta(seconds=s))
    micros = st.integers(min_value=-86_399_999_999, max_value=86_399_999_999).map(
        lambda us: timedelta(microseconds=us)
    )
    offsets = st.one_of(seconds, micros, st.sampled_from([timedelta(0), timedelta(hours=5.5)]))
    names = st.one_of(st.none(), st.sampled_from(["EST", "IST", "Z", "Local time"]))
    return st.builds(
        lambda offset, name: timezone(offset) if name is None else timezone(offset, name),
        offsets,
        names,
    )


def zone_infos() -> st.SearchStrategy[ZoneInfo]:
    """`zoneinfo.ZoneInfo` zones from the tz database, by key."""
    return st.timezones()


def time_zones() -> st.SearchStrategy[tzinfo]:
    """Every kind of zone llmgine supports: UTC, fixed offsets and ZoneInfo."""
    return st.one_of(st.just(UTC), fixed_offsets(), zone_infos())


def instants() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes over the whole guaranteed range, 0001-01-02 to 9999-12-30."""
    return st.datetimes(
        min_value=MIN_INSTANT.replace(tzinfo=None),
        max_value=MAX_INSTANT.replace(tzinfo=None),
        timezones=st.just(UTC),
    )


def datetimes(
    zones: st.SearchStrategy[tzinfo] | None = None, *, naive: bool = True
) -> st.SearchStrategy[datetime]:
    """Datetimes that each name an instant inside the guaranteed range.

    Aware ones are in ``zones`` (by default every kind of zone, `time_zones`,
    with `ambiguous_datetimes` mixed in); with ``naive``, naive ones (local
    time) too. All have microseconds and a drawn ``fold``; Hypothesis also
    aims some wall clocks at zone transitions.
    """
    aware = st.datetimes(
        min_value=EARLIEST_WALL,
        max_value=LATEST_WALL,
        timezones=time_zones() if zones is None else zones,
    )
    kinds = [aware, ambiguous_datetimes()] if zones is None else [aware]
    if naive:
        kinds.append(st.datetimes(min_value=EARLIEST_WALL, max_value=LATEST_WALL))
    return st.one_of(kinds)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """`datetimes` without naive ones: their instant does not depend on the process zone."""
    return datetimes(naive=False)


def ambiguous_datetimes() -> st.SearchStrategy[datetime]:
    """Wall clocks that occur twice in their ZoneInfo zone, with either ``fold``."""
    return st.builds(
        lambda wall, minutes, micros, fold: (
            wall + timedelta(minutes=minutes, microseconds=micros)
        ).replace(fold=fold),
        st.sampled_from(AMBIGUOUS_WALL_TIMES),
        st.integers(min_value=0, max_value=10),
        st.integers(min_value=0, max_value=999_999),
        st.integers(min_value=0, max_value=1),
    )


_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=())),
)


def json_values(*, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """JSON-ish values: None, bools, ints of any size, floats (infinities, -0.0), text
    with any code point (NUL and lone surrogates too), and lists and dicts of these."""
    return st.recursive(
        _SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(st.text(max_size=8), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


def scheduled_events(
    due: st.SearchStrategy[datetime] | None = None,
) -> st.SearchStrategy[ConformanceReminder]:
    """`ConformanceReminder` events with fresh ids, due at `datetimes` (or ``due``),
    carrying JSON-ish values and datetimes in their payload."""
    return st.builds(
        ConformanceReminder,
        scheduled_time=datetimes() if due is None else due,
        text=st.text(st.characters(exclude_categories=()), max_size=20),
        count=st.integers(min_value=-(2**70), max_value=2**70),
        remind_at=st.none() | datetimes(),
        moments=st.lists(datetimes(), max_size=3),
        extra=st.dictionaries(st.text(max_size=8), json_values(), max_size=4),
    )


# --- hostile values: what no store may crash on ---------------------------------------


class RaisingZone(tzinfo):
    """A tzinfo whose ``utcoffset`` raises: a C encoder calling it must not crash."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("RaisingZone has no offset")

    def dst(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("RaisingZone has no DST")

    def tzname(self, dt: datetime | None) -> str:
        return "RAISING"


class OffsetlessZone(tzinfo):
    """A tzinfo whose ``utcoffset`` returns None: Python calls such a datetime naive."""

    def utcoffset(self, dt: datetime | None) -> None:
        return None

    def dst(self, dt: datetime | None) -> None:
        return None

    def tzname(self, dt: datetime | None) -> None:
        return None


class ValuelessEnum(Enum):
    """An Enum whose ``value`` raises: a C encoder reading it must not crash."""

    A = 1

    @property
    def value(self) -> Any:
        raise RuntimeError("ValuelessEnum has no value")


@dataclass(slots=True)
class UnsetSlot:
    """A slots dataclass; `unset_slot` deletes its field, so reading it raises."""

    x: int = 0


def unset_slot() -> UnsetSlot:
    value = UnsetSlot()
    del value.x
    return value


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _cycle(kind: str) -> Any:
    if kind == "list":
        looped: list[Any] = [1]
        looped.append(looped)
        return looped
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    return loop


def huge_int(sign: int = 1) -> int:
    """An integer ``str`` refuses (beyond the interpreter's int-to-str digit limit)."""
    digits: int = sys.get_int_max_str_digits() + 5
    huge: int = sign * 10**digits
    return huge


def hostile_values() -> st.SearchStrategy[Any]:
    """Values that have broken stores: tzinfos that raise or return None (in datetimes,
    times and dict keys), integers past the digit limit, deep nesting, cycles, lone
    surrogates, NaN and infinities, NUL, large strings. A store may refuse a scheduled
    event holding one (with `UnstorableEventError`); it must never crash or lose another.
    Some of these values cannot be printed (``repr`` raises): see `Hostile`."""
    zone = st.sampled_from([RaisingZone(), OffsetlessZone()])
    moment = st.builds(datetime, st.integers(1, 9999), st.just(1), st.just(1), tzinfo=zone)
    clock = st.builds(time, st.integers(0, 23), tzinfo=zone)
    scalar = st.one_of(
        moment,
        clock,
        st.sampled_from([1, -1]).map(huge_int),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(st.characters(exclude_categories=()), max_size=8),
        st.sampled_from(["\x00", "a\x00b", "\udfff", "x\ud800y"]),
        st.integers(1, 200_000).map(lambda n: "L" * n),
        st.integers(1, 400).map(_nested),
        st.sampled_from(["list", "dict"]).map(_cycle),
        st.just(ValuelessEnum.A),
        st.builds(unset_slot),
    )
    return st.recursive(
        scalar,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=4), children, max_size=3),
        ),
        max_leaves=4,
    )


class Hostile:
    """A hostile value, printable in a report even where its own ``repr`` raises."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        try:
            text = repr(self.value)
        except Exception as exc:
            text = f"<{type(self.value).__name__} whose repr raises {type(exc).__name__}>"
        return f"Hostile({text[:300]})"
