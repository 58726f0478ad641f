"""The codec: every field of a scheduled event survives encode -> JSON -> decode."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import InitVar, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from datetime import time as time_of_day
from decimal import Decimal
from enum import Enum, Flag, IntEnum, StrEnum
from typing import Any, ClassVar, Literal, NamedTuple, Optional, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgine.database import codec
from llmgine.database.codec import decode_event, dumps, encode_event, loads
from llmgine.database.instants import MAX_INSTANT, MIN_INSTANT, parse_timestamp, to_utc
from llmgine.errors import DecodeError, UnstorableEventError
from llmgine.messages.scheduled_events import (
    EVENT_CLASSES,
    ScheduledEvent,
    register_scheduled_event_class,
)

# --- classes the events name in their annotations -----------------------------------


class CodecTestColor(Enum):
    RED = "red"
    BLUE = "blue"


class CodecTestLevel(IntEnum):
    LOW = 1
    HIGH = 2


class CodecTestMode(StrEnum):
    FAST = "fast"
    SLOW = "slow"


class CodecTestPerm(Flag):
    R = 1
    W = 2
    X = 4


@dataclass(frozen=True)
class CodecTestPoint:
    x: int
    y: int


@dataclass
class CodecTestBox:
    label: Any
    points: list[CodecTestPoint] = field(default_factory=list)
    color: CodecTestColor | None = None
    count: int = field(default=0, init=False)


@dataclass(kw_only=True)
class CodecTestEvent(ScheduledEvent):
    """Holds any value in ``value``; the other fields name the classes it may hold."""

    value: Any = None
    box: CodecTestBox | None = None
    level: CodecTestLevel | None = None
    mode: CodecTestMode | None = None
    perm: CodecTestPerm | None = None
    parent: CodecTestEvent | None = None


@dataclass(kw_only=True)
class CodecTestRequired(ScheduledEvent):
    note: str


# Enums reachable only through one kind of annotation each.
class CodecTestInList(Enum):
    A = 1


class CodecTestInDictValue(Enum):
    A = 1


class CodecTestInDictKey(Enum):
    A = 1


class CodecTestInOptional(Enum):
    A = 1


class CodecTestInUnion(Enum):
    A = 1


class CodecTestInLiteral(Enum):
    A = 1


class CodecTestInNested(Enum):
    A = 1


class CodecTestStray(Enum):
    A = 1


@dataclass
class CodecTestStrayBox:
    n: int = 0


@dataclass
class CodecTestInner:
    kind: CodecTestInNested


@dataclass(kw_only=True)
class CodecTestAnnotated(ScheduledEvent):
    in_list: list[CodecTestInList] = field(default_factory=list)
    in_dict: dict[CodecTestInDictKey, CodecTestInDictValue] = field(default_factory=dict)
    in_optional: Optional[CodecTestInOptional] = None  # noqa: UP045 - the spelling under test
    in_union: int | CodecTestInUnion = 0
    in_literal: Literal[CodecTestInLiteral.A] | None = None
    inner: CodecTestInner | None = None
    anything: Any = None


@dataclass(kw_only=True)
class CodecTestWithClassVars(ScheduledEvent):
    instances: ClassVar[int] = 0
    seed: InitVar[int] = 0
    total: int = 0

    def __post_init__(self, seed: int) -> None:
        self.total += seed


@dataclass(kw_only=True)
class CodecTestComputed(ScheduledEvent):
    items: list[int] = field(default_factory=list)
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.total = sum(self.items)


class CodecTestBadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class CodecTestUndecorated(ScheduledEvent):
    note: str = "lost"


class CodecTestPair(NamedTuple):
    a: int
    b: int


class CodecTestStr(str):
    pass


class CodecTestPytzLike(tzinfo):
    """A third-party tzinfo: correct offsets, but not one the codec can name."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "CET"


TEST_CLASSES: tuple[type[ScheduledEvent], ...] = (
    CodecTestEvent,
    CodecTestRequired,
    CodecTestAnnotated,
    CodecTestWithClassVars,
    CodecTestComputed,
)


@pytest.fixture(autouse=True)
def registry() -> Iterator[dict[str, type[ScheduledEvent]]]:
    """Registers this module's events; restores the registry afterwards."""
    saved = dict(EVENT_CLASSES)
    for cls in TEST_CLASSES:
        register_scheduled_event_class(cls)
    yield EVENT_CLASSES
    EVENT_CLASSES.clear()
    EVENT_CLASSES.update(saved)


@pytest.fixture(params=["orjson", "stdlib"])
def json_library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with orjson (the "fast" extra) and without it."""
    if request.param == "stdlib":
        monkeypatch.setattr(codec, "_orjson", None)
    elif codec._orjson is None:
        pytest.skip("orjson is not installed")
    return str(request.param)


@pytest.fixture
def set_tz() -> Iterator[Callable[[str], None]]:
    """``set_tz(name)`` makes ``name`` the process's local zone for the test."""
    with pytest.MonkeyPatch.context() as patch:

        def set_to(name: str) -> None:
            patch.setenv("TZ", name)
            time.tzset()

        yield set_to
    time.tzset()


E = TypeVar("E", bound=ScheduledEvent)


def round_trip(event: E) -> E:
    restored = decode_event(type(event).__name__, loads(dumps(encode_event(event))))
    assert isinstance(restored, type(event))
    assert type(restored) is type(event)
    return restored


def decoded_value(payload: Any) -> Any:
    event = decode_event("CodecTestEvent", payload)
    assert isinstance(event, CodecTestEvent)
    return event.value


def value_round_trip(value: Any) -> Any:
    return round_trip(CodecTestEvent(value=value)).value


def assert_same(actual: Any, expected: Any, path: str = "value") -> None:
    """Equal, of the same type all the way down (NaN equal to NaN, -0.0 keeps its sign)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), path
        else:
            assert actual == expected, path
            assert math.copysign(1, actual) == math.copysign(1, expected), path
    elif isinstance(expected, Decimal):
        assert actual.as_tuple() == expected.as_tuple(), path
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), path
        for key in expected:
            assert_same(next(k for k in actual if k == key), key, f"{path} key {key!r}")
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), path
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, set | frozenset):
        assert actual == expected, path
        for item in expected:
            assert_same(next(a for a in actual if a == item), item, f"{path} item {item!r}")
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for f in dataclasses.fields(expected):
            assert_same(getattr(actual, f.name), getattr(expected, f.name), f"{path}.{f.name}")
    elif isinstance(expected, datetime | time_of_day):
        assert_same_clock(actual, expected)
    else:
        assert actual == expected, path


def assert_same_clock(actual: datetime | time_of_day, expected: datetime | time_of_day) -> None:
    """The same wall clock, zone (by type, offset, name and key) and fold."""
    assert type(actual) is type(expected)
    assert actual.replace(tzinfo=None) == expected.replace(tzinfo=None)
    assert type(actual.tzinfo) is type(expected.tzinfo)
    assert actual.utcoffset() == expected.utcoffset()
    assert actual.tzname() == expected.tzname()
    assert actual.fold == expected.fold
    if isinstance(expected.tzinfo, ZoneInfo):
        assert isinstance(actual.tzinfo, ZoneInfo)
        assert actual.tzinfo.key == expected.tzinfo.key


# --- round trips of every supported value -------------------------------------------

VALUES: dict[str, Any] = {
    "str": "hello",
    "empty-str": "",
    "int": 42,
    "negative-int": -7,
    "int64-max": 2**63 - 1,
    "int64-min": -(2**63),
    "int-past-int64": 2**63,
    "int-below-int64": -(2**63) - 1,
    "huge-int": 10**100,
    "float": 1.5,
    "negative-zero": -0.0,
    "float-max": 1.7976931348623157e308,
    "float-subnormal": 5e-324,
    "float-shortest-repr": 0.1 + 0.2,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "true": True,
    "false": False,
    "none": None,
    "tuple": (1, "a", None, 2.5),
    "empty-tuple": (),
    "nested-tuple": ((1, 2), (3,), ()),
    "set": {1, 2, 3},
    "empty-set": set(),
    "set-of-tuples": {(1, "a"), (2, "b")},
    "frozenset": frozenset({"a", "b"}),
    "frozenset-of-frozensets": frozenset({frozenset({1}), frozenset()}),
    "nested-list": [1, [2, [3, [4, []]]], {"a": [5]}],
    "nested-dict": {"a": {"b": {"c": [1, {"d": None}]}}},
    "int-keys": {1: "a", 2: "b"},
    "tuple-keys": {(1, 2): "pair", (): "empty"},
    "mixed-keys": {1: "int", "1": "str", None: "none", False: "bool", 2.5: "float"},
    "date-and-uuid-keys": {date(2020, 1, 2): 1, uuid.UUID(int=7): 2},
    "user-dict-with-type-key": {"$type": "datetime", "v": "not a date"},
    "type-key-deep-inside": [{"a": {"$type": "repr"}}],
    "type-key-only": {"$type": None},
    "naive-datetime": datetime(2024, 2, 29, 13, 45, 7, 123456),
    "utc-datetime": datetime(2024, 2, 29, 13, 45, 7, tzinfo=UTC),
    "date": date(2024, 2, 29),
    "time": time_of_day(23, 59, 59, 999999),
    "aware-time": time_of_day(1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-3))),
    "zoned-time": time_of_day(1, 2, tzinfo=ZoneInfo("Europe/Paris")),
    "timedelta": timedelta(days=3, seconds=7, microseconds=11),
    "negative-timedelta": timedelta(microseconds=-1),
    "timedelta-max": timedelta.max,
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("3.14159265358979323846264338327950288"),
    "decimal-keeps-exponent": Decimal("1.10"),
    "decimal-negative-zero": Decimal("-0"),
    "decimal-nan": Decimal("NaN"),
    "decimal-snan": Decimal("sNaN"),
    "decimal-infinity": Decimal("-Infinity"),
    "decimal-exponent": Decimal("1E+3"),
    "bytes": bytes(range(256)),
    "empty-bytes": b"",
    "bytearray": bytearray(b"\x00abc\xff"),
    "enum": CodecTestColor.RED,
    "int-enum": CodecTestLevel.HIGH,
    "str-enum": CodecTestMode.FAST,
    "flag": CodecTestPerm.W,
    "flag-combination": CodecTestPerm.R | CodecTestPerm.X,
    "flag-empty": CodecTestPerm(0),
    "dataclass": CodecTestPoint(1, 2),
    "dataclass-in-list-in-dict": {"k": [CodecTestBox("b", [CodecTestPoint(3, 4)])]},
    "dataclass-as-dict-key": {CodecTestPoint(0, 0): "origin"},
    "dataclass-in-set": {CodecTestPoint(5, 6)},
    "containers-of-everything": [
        (datetime(2020, 1, 1), Decimal("2.50")),
        {b"k": frozenset({CodecTestLevel.LOW})},
    ],
    "emoji": "\U0001f600 \U0001f1e6\U0001f1fa \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "combining-marks": "e\u0301 a\u0308\u0323",
    "right-to-left": "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eabc",
    "nul": "a\x00b",
    "control-and-separators": "\t\n\r\x1b\u2028\u2029\ufeff",
    "lone-high-surrogate": "\ud800",
    "lone-low-surrogate": "x\udfffy",
    "surrogate-as-dict-key": {"\ud800": "\udfff"},
    "high-then-low-surrogate": "a\ud800\udc00b",  # two code points, not U+10000
    "surrogate-pair-in-key": {"\udbff\udfff": ["\ud83d\ude00"]},
    "max-code-point": "\U0010ffff",
    "megabyte-string": "x" * 1_000_000,
    "ten-thousand-ints": list(range(10_000)),
    "ten-thousand-dicts": [{"i": i, "s": str(i)} for i in range(10_000)],
}


@pytest.mark.usefixtures("json_library")
@pytest.mark.parametrize("value", list(VALUES.values()), ids=list(VALUES))
def test_value_comes_back_equal_and_of_the_same_type(value: Any) -> None:
    assert_same(value_round_trip(value), value)


def test_none_empty_dict_and_dict_of_none_stay_distinct() -> None:
    restored = value_round_trip([None, {}, {"a": None}, [], [None]])
    assert_same(restored, [None, {}, {"a": None}, [], [None]])


def test_every_base_field_round_trips() -> None:
    event = CodecTestEvent(
        event_id="fixed-id",
        timestamp="2024-01-01T00:00:00",
        metadata={"trace": [1, 2], "when": datetime(2024, 1, 1)},
        session_id="s-1",  # type: ignore[arg-type]
        scheduled_time=datetime(2030, 1, 1, 9, 0),
    )
    restored = round_trip(event)
    assert restored == event
    assert_same(restored.metadata, event.metadata)


def test_subclass_fields_round_trip_with_their_types() -> None:
    event = CodecTestEvent(
        value=1,
        box=CodecTestBox({"x": (1,)}, [CodecTestPoint(1, 2)], CodecTestColor.BLUE),
        level=CodecTestLevel.LOW,
        mode=CodecTestMode.SLOW,
        perm=CodecTestPerm.R | CodecTestPerm.W,
    )
    restored = round_trip(event)
    assert restored == event
    for name in ("box", "level", "mode", "perm"):
        assert_same(getattr(restored, name), getattr(event, name), name)


def test_required_subclass_field_round_trips() -> None:
    assert round_trip(CodecTestRequired(note="call mum")).note == "call mum"


def test_event_of_the_same_class_nested_in_a_field_round_trips() -> None:
    event = CodecTestEvent(value="child", parent=CodecTestEvent(value="parent"))
    assert round_trip(event) == event


def test_non_init_dataclass_field_keeps_its_value() -> None:
    box = CodecTestBox("counted")
    box.count = 9
    assert value_round_trip(box).count == 9


def test_non_init_event_field_keeps_its_stored_value() -> None:
    event = CodecTestComputed(items=[1, 2])
    event.total = 100
    assert round_trip(event).total == 100


def test_dict_key_order_is_kept() -> None:
    value = {"b": 1, "a": 2, "c": 3}
    assert list(value_round_trip(value)) == ["b", "a", "c"]
    keyed = {3: "c", 1: "a", 2: "b"}
    assert list(value_round_trip(keyed)) == [3, 1, 2]


@pytest.mark.usefixtures("json_library")
def test_payload_is_strict_json() -> None:
    value = [math.nan, -math.inf, 2**70, {1: b"x"}, VALUES["containers-of-everything"]]
    text = dumps(encode_event(CodecTestEvent(value=value)))

    def reject(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    assert isinstance(json.loads(text, parse_constant=reject), dict)


# --- datetimes ----------------------------------------------------------------------

DATETIMES: dict[str, datetime] = {
    "naive": datetime(2024, 6, 1, 12, 30),
    "naive-microseconds": datetime(2024, 6, 1, 12, 30, 0, 1),
    "utc": datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
    "positive-offset": datetime(2024, 6, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "negative-offset": datetime(2024, 6, 1, tzinfo=timezone(-timedelta(hours=9, minutes=30))),
    "offset-with-seconds": datetime(
        2024, 6, 1, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15))
    ),
    "offset-with-microseconds": datetime(
        2024, 6, 1, tzinfo=timezone(timedelta(hours=-1, seconds=-1, microseconds=-7))
    ),
    "named-timezone": datetime(2024, 6, 1, tzinfo=timezone(timedelta(hours=2), "CEST")),
    "named-utc": datetime(2024, 6, 1, tzinfo=timezone(timedelta(0), "Zulu")),
    "zoneinfo": datetime(2024, 6, 1, 8, tzinfo=ZoneInfo("Australia/Perth")),
    "zoneinfo-fold-1": datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
    "zoneinfo-fold-0": datetime(2021, 11, 7, 1, 30, fold=0, tzinfo=ZoneInfo("America/New_York")),
    "naive-fold-1": datetime(2021, 11, 7, 1, 30, fold=1),
    "zoneinfo-in-gap": datetime(2021, 3, 14, 2, 30, tzinfo=ZoneInfo("America/New_York")),
    "earliest": datetime(1, 1, 2, tzinfo=UTC),
    "latest": datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
    "naive-earliest": datetime(1, 1, 2),
    "naive-latest": datetime(9999, 12, 30, 23, 59, 59, 999999),
}


@pytest.mark.parametrize("when", list(DATETIMES.values()), ids=list(DATETIMES))
def test_scheduled_time_keeps_its_wall_clock_zone_and_fold(when: datetime) -> None:
    restored = round_trip(CodecTestEvent(scheduled_time=when)).scheduled_time
    assert restored == when
    assert_same_clock(restored, when)


@pytest.mark.parametrize("when", list(DATETIMES.values()), ids=list(DATETIMES))
def test_datetime_in_a_field_keeps_its_wall_clock_zone_and_fold(when: datetime) -> None:
    assert_same_clock(value_round_trip(when), when)


def test_naive_datetime_stays_naive() -> None:
    assert value_round_trip(datetime(2024, 1, 1, 9)).tzinfo is None


def test_zoneinfo_datetime_keeps_its_key() -> None:
    restored = value_round_trip(datetime(2024, 1, 1, tzinfo=ZoneInfo("Asia/Kolkata")))
    assert isinstance(restored.tzinfo, ZoneInfo)
    assert restored.tzinfo.key == "Asia/Kolkata"


def test_fixed_offset_keeps_seconds_and_microseconds() -> None:
    offset = timedelta(hours=5, minutes=30, seconds=15, microseconds=250)
    restored = value_round_trip(datetime(2024, 1, 1, tzinfo=timezone(offset)))
    assert restored.utcoffset() == offset


def test_named_timezone_keeps_its_name() -> None:
    restored = value_round_trip(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1), "CET")))
    assert restored.tzname() == "CET"


def test_fold_1_names_the_second_of_two_equal_wall_clocks() -> None:
    when = datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    restored = value_round_trip(when)
    assert restored.fold == 1
    assert restored.utcoffset() == timedelta(hours=-5)
    assert to_utc(restored) == datetime(2021, 11, 7, 6, 30, tzinfo=UTC)


def test_time_keeps_its_fold() -> None:
    assert value_round_trip(time_of_day(1, 30, fold=1)).fold == 1


FIXED_OFFSETS = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
        max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
    ),
)
ZONES: st.SearchStrategy[tzinfo | None] = st.one_of(
    st.none(), st.just(UTC), FIXED_OFFSETS, st.timezones()
)
ANY_DATETIMES: st.SearchStrategy[datetime] = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=ZONES,  # type: ignore[arg-type]  # the stubs keep naive and aware apart
)


@settings(max_examples=200)
@given(when=ANY_DATETIMES)
def test_any_datetime_round_trips(when: datetime) -> None:
    restored = value_round_trip(when)
    assert restored == when
    assert_same_clock(restored, when)


@settings(max_examples=100)
@given(when=ANY_DATETIMES)
def test_any_scheduled_time_round_trips(when: datetime) -> None:
    restored = round_trip(ScheduledEvent(scheduled_time=when)).scheduled_time
    assert restored == when
    assert_same_clock(restored, when)


# --- timestamps ---------------------------------------------------------------------


def test_str_timestamp_stays_str() -> None:
    event = CodecTestEvent(timestamp="2024-01-01T10:00:00.123456")
    assert_same(round_trip(event).timestamp, "2024-01-01T10:00:00.123456")


@pytest.mark.parametrize(
    "stamp",
    [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 10, tzinfo=ZoneInfo("Europe/Berlin"))],
    ids=["naive", "zoned"],
)
def test_datetime_timestamp_stays_datetime(stamp: datetime) -> None:
    restored = round_trip(CodecTestEvent(timestamp=stamp)).timestamp
    assert isinstance(restored, datetime)
    assert_same_clock(restored, stamp)


def test_default_timestamp_stays_the_same_str() -> None:
    event = CodecTestEvent()
    assert round_trip(event).timestamp == event.timestamp


# --- what cannot be stored ----------------------------------------------------------


def encode_error(event: ScheduledEvent, *, strict: bool = True) -> str:
    with pytest.raises(UnstorableEventError) as caught:
        encode_event(event, strict=strict)
    return str(caught.value)


@pytest.mark.parametrize(
    ("value", "where", "culprit"),
    [
        ([1, 2, object()], "CodecTestEvent.value[2]", "object"),
        ({"k": lambda: None}, "CodecTestEvent.value['k']", "function"),
        ({"a": [{"b": (1, {2, 3}, object())}]}, "CodecTestEvent.value['a'][0]['b'][2]", "object"),
        ({1: object()}, "CodecTestEvent.value[1]", "object"),
        ([datetime(2024, 1, 1, tzinfo=CodecTestPytzLike())], "value[0]", "CodecTestPytzLike"),
        (time_of_day(1, tzinfo=CodecTestPytzLike()), "value", "CodecTestPytzLike"),
        (ZoneInfo("UTC"), "value", "ZoneInfo"),
    ],
    ids=["list-item", "dict-value", "deep", "non-str-key-dict", "pytz-like-tz", "time-tz", "tz"],
)
def test_unstorable_value_is_rejected_naming_class_and_path(
    value: Any, where: str, culprit: str
) -> None:
    message = encode_error(CodecTestEvent(value=value))
    assert where in message
    assert culprit in message


def test_unstorable_value_inside_a_nested_dataclass_names_its_field() -> None:
    message = encode_error(CodecTestEvent(box=CodecTestBox(label=[object()])))
    assert "CodecTestEvent.box.label[0]" in message


def test_unstorable_scheduled_time_is_rejected() -> None:
    event = CodecTestEvent(scheduled_time=datetime(2030, 1, 1, tzinfo=CodecTestPytzLike()))
    assert "CodecTestEvent.scheduled_time" in encode_error(event)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (OrderedDict(a=1), "OrderedDict"),
        (CodecTestPair(1, 2), "CodecTestPair"),
        (CodecTestStr("s"), "CodecTestStr"),
    ],
    ids=["ordered-dict", "named-tuple", "str-subclass"],
)
def test_subclass_of_a_json_type_is_rejected_rather_than_changing_type(
    value: Any, kind: str
) -> None:
    assert kind in encode_error(CodecTestEvent(value=value))


def test_value_that_contains_itself_is_rejected() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "CodecTestEvent.value" in encode_error(CodecTestEvent(value=loop))


@pytest.mark.parametrize(
    "value",
    [CodecTestStray.A, CodecTestStrayBox(), [CodecTestStray.A], {"k": CodecTestStrayBox()}],
    ids=["enum", "dataclass", "enum-in-list", "dataclass-in-dict"],
)
def test_class_not_named_in_annotations_is_rejected(value: Any) -> None:
    message = encode_error(CodecTestEvent(value=value))
    assert "CodecTestStray" in message
    assert "annotations" in message


def test_dataclass_class_itself_is_not_taken_for_an_instance() -> None:
    assert "CodecTestEvent.value" in encode_error(CodecTestEvent(value=CodecTestPoint))


@pytest.mark.parametrize(
    "event",
    [
        CodecTestAnnotated(in_list=[CodecTestInList.A]),
        CodecTestAnnotated(in_dict={CodecTestInDictKey.A: CodecTestInDictValue.A}),
        CodecTestAnnotated(in_optional=CodecTestInOptional.A),
        CodecTestAnnotated(in_union=CodecTestInUnion.A),
        CodecTestAnnotated(in_literal=CodecTestInLiteral.A),
        CodecTestAnnotated(inner=CodecTestInner(CodecTestInNested.A)),
        CodecTestAnnotated(anything=[CodecTestInner(CodecTestInNested.A), CodecTestInList.A]),
    ],
    ids=["list", "dict", "optional", "union", "literal", "nested-dataclass", "any-field"],
)
def test_class_named_anywhere_in_annotations_is_restored(event: CodecTestAnnotated) -> None:
    restored = round_trip(event)
    assert restored == event
    assert_same(restored.in_dict, event.in_dict)
    assert_same(restored.anything, event.anything)


def test_class_var_and_init_var_are_not_taken_for_undecorated_fields() -> None:
    event = CodecTestWithClassVars(seed=3, total=5)
    payload = encode_event(event)
    assert payload["total"] == 8
    assert "instances" not in payload
    assert "seed" not in payload
    assert round_trip(event).total == 8


def test_fields_declared_without_dataclass_are_rejected_by_name() -> None:
    message = encode_error(CodecTestUndecorated())
    assert "CodecTestUndecorated" in message
    assert "note" in message


def test_event_log_mode_stores_undecorated_fields_too() -> None:
    payload = encode_event(CodecTestUndecorated(), strict=False)
    assert payload["note"] == "lost"
    assert "scheduled_time" in payload


def test_classes_local_to_a_function_cannot_be_resolved_so_are_rejected() -> None:
    class LocalColor(Enum):
        GREEN = 1

    @dataclass(kw_only=True)
    class CodecTestLocalEvent(ScheduledEvent):
        color: LocalColor | None = None

    message = encode_error(CodecTestLocalEvent(color=LocalColor.GREEN))
    assert "CodecTestLocalEvent.color" in message
    assert "LocalColor" in message


# --- event-log mode: a repr instead of an error -------------------------------------


def test_event_log_mode_stores_a_repr_of_an_unsupported_value() -> None:
    thing = object()
    payload = encode_event(CodecTestEvent(value=[1, thing]), strict=False)
    assert payload["value"] == [1, {"$type": "repr", "v": repr(thing)}]


def test_event_log_mode_stores_a_repr_of_an_unsupported_tzinfo() -> None:
    when = datetime(2024, 1, 1, tzinfo=CodecTestPytzLike())
    payload = encode_event(CodecTestEvent(value=when), strict=False)
    assert payload["value"] == {"$type": "repr", "v": repr(when)}


def test_event_log_mode_stores_a_repr_of_a_value_that_contains_itself() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    payload = encode_event(CodecTestEvent(value=loop), strict=False)
    assert loads(dumps(payload))["value"] == {"$type": "repr", "v": "[1, [...]]"}


def test_event_log_mode_survives_a_value_whose_repr_fails() -> None:
    payload = encode_event(CodecTestEvent(value=[CodecTestBadRepr()]), strict=False)
    assert "CodecTestBadRepr" in loads(dumps(payload))["value"][0]["v"]


def test_event_log_mode_keeps_the_value_of_a_json_type_subclass() -> None:
    payload = encode_event(CodecTestEvent(value=OrderedDict(a=CodecTestStr("s"))), strict=False)
    assert payload["value"] == {"a": "s"}


def test_event_log_mode_stores_classes_not_named_in_annotations() -> None:
    payload = encode_event(CodecTestEvent(value=CodecTestStray.A), strict=False)
    assert payload["value"]["$type"] == "enum"


def test_event_log_payload_is_json() -> None:
    payload = encode_event(CodecTestEvent(value={"f": lambda: 1, "n": math.nan}), strict=False)
    assert loads(dumps(payload))["value"]["f"]["$type"] == "repr"


def test_repr_tag_decodes_to_the_readable_text() -> None:
    payload = encode_event(CodecTestEvent(value=object()), strict=False)
    assert decoded_value(payload).startswith("<object object")


# --- rows that cannot be decoded ----------------------------------------------------


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload = loads(dumps(encode_event(CodecTestEvent())))
    assert isinstance(payload, dict)
    payload.update(changes)
    return payload


def test_unknown_class_name_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="CodecTestNeverRegistered"):
        decode_event("CodecTestNeverRegistered", valid_payload())


@pytest.mark.parametrize("payload", [[], "text", None, 3], ids=["list", "str", "null", "int"])
def test_payload_that_is_not_an_object_is_a_decode_error(payload: Any) -> None:
    with pytest.raises(DecodeError):
        decode_event("CodecTestEvent", payload)


def test_unknown_type_tag_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="pickle"):
        decode_event("CodecTestEvent", valid_payload(value={"$type": "pickle", "v": "x"}))


def test_missing_required_field_is_a_decode_error() -> None:
    payload = loads(dumps(encode_event(CodecTestRequired(note="n"))))
    del payload["note"]
    with pytest.raises(DecodeError, match="CodecTestRequired"):
        decode_event("CodecTestRequired", payload)


GARBAGE: dict[str, Any] = {
    "datetime-text": {"$type": "datetime", "v": "not a date"},
    "datetime-without-value": {"$type": "datetime"},
    "unknown-zone": {"$type": "datetime", "v": "2024-01-01T00:00:00", "zone": "Mars/Olympus"},
    "zone-path": {"$type": "datetime", "v": "2024-01-01T00:00:00", "zone": "../../etc/passwd"},
    "offset-not-a-number": {"$type": "datetime", "v": "2024-01-01T00:00:00", "offset": "x"},
    "offset-too-large": {"$type": "datetime", "v": "2024-01-01T00:00:00", "offset": 10**12},
    "time": {"$type": "time", "v": "25:00"},
    "date": {"$type": "date", "v": "2024-02-30"},
    "timedelta": {"$type": "timedelta", "v": "one day"},
    "uuid": {"$type": "uuid", "v": "not-a-uuid"},
    "decimal": {"$type": "decimal", "v": "one"},
    "bytes": {"$type": "bytes", "v": "!!not base64!!"},
    "bytearray": {"$type": "bytearray", "v": 12},
    "int": {"$type": "int", "v": "twelve"},
    "float": {"$type": "float", "v": "fast"},
    "tuple": {"$type": "tuple", "v": 5},
    "set-of-lists": {"$type": "set", "v": [[1]]},
    "dict-pairs": {"$type": "dict", "v": [[1]]},
    "dict-unhashable-key": {"$type": "dict", "v": [[[1], 2]]},
    "enum-member": {"$type": "enum", "cls": f"{__name__}.CodecTestColor", "name": "PURPLE"},
    "enum-not-named": {"$type": "enum", "cls": f"{__name__}.CodecTestStray", "name": "A"},
    "enum-importable-elsewhere": {"$type": "enum", "cls": "http.HTTPStatus", "name": "OK"},
    "enum-of-a-dataclass": {"$type": "enum", "cls": f"{__name__}.CodecTestPoint", "name": "x"},
    "dataclass-not-named": {"$type": "dataclass", "cls": "os.stat_result", "v": {}},
    "dataclass-of-an-enum": {"$type": "dataclass", "cls": f"{__name__}.CodecTestColor", "v": {}},
    "dataclass-bad-fields": {"$type": "dataclass", "cls": f"{__name__}.CodecTestPoint", "v": {}},
    "unhashable-tag": {"$type": ["datetime"]},
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_in_a_tagged_value_is_a_decode_error(garbage: Any) -> None:
    with pytest.raises(DecodeError):
        decode_event("CodecTestEvent", valid_payload(value=[garbage]))


@pytest.mark.parametrize(
    "scheduled_time",
    ["next tuesday", {"$type": "date", "v": "2024-01-01"}, None, 1700000000],
    ids=["garbage-text", "date", "null", "number"],
)
def test_scheduled_time_that_is_not_a_datetime_is_a_decode_error(scheduled_time: Any) -> None:
    with pytest.raises(DecodeError):
        decode_event("CodecTestEvent", valid_payload(scheduled_time=scheduled_time))


def test_decode_ignores_fields_the_class_no_longer_has() -> None:
    restored = decode_event("CodecTestEvent", valid_payload(removed_field=[1, 2]))
    assert not hasattr(restored, "removed_field")


def test_decode_fills_in_defaults_for_fields_the_row_lacks() -> None:
    payload = valid_payload()
    del payload["value"], payload["metadata"]
    restored = decode_event("CodecTestEvent", payload)
    assert isinstance(restored, CodecTestEvent)
    assert restored.value is None
    assert restored.metadata == {}


# --- rows written by the original llmgine module ------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T09:15:00", datetime(2025, 3, 1, 9, 15)),
        ("2025-03-01T09:15:00.250000", datetime(2025, 3, 1, 9, 15, 0, 250000)),
        (
            "2025-03-01T09:15:00+02:00",
            datetime(2025, 3, 1, 9, 15, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
    ids=["naive", "microseconds", "offset"],
)
def test_legacy_iso_scheduled_time_decodes_to_a_datetime(text: str, expected: datetime) -> None:
    legacy = {
        "event_id": "legacy-1",
        "timestamp": "2025-03-01T08:00:00.123456",
        "metadata": {"source": "v0"},
        "session_id": "BUS",
        "scheduled_time": text,
    }
    restored = decode_event("ScheduledEvent", legacy)
    assert_same_clock(restored.scheduled_time, expected)
    assert restored.timestamp == "2025-03-01T08:00:00.123456"
    assert restored.event_id == "legacy-1"
    assert restored.metadata == {"source": "v0"}


# --- independence from the process TZ -----------------------------------------------

ZONE_SAMPLES = [
    datetime(2024, 7, 1, 12),
    datetime(2021, 11, 7, 1, 30, fold=1),
    datetime(2024, 7, 1, 12, tzinfo=UTC),
    datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo")),
    datetime(2024, 7, 1, 12, tzinfo=timezone(timedelta(hours=-4))),
]


def test_payload_text_does_not_depend_on_the_process_tz(
    set_tz: Callable[[str], None],
) -> None:
    event = CodecTestEvent(value=ZONE_SAMPLES, scheduled_time=datetime(2030, 1, 1))
    texts = set()
    for name in ("UTC", "America/Los_Angeles", "Asia/Kolkata"):
        set_tz(name)
        texts.add(dumps(encode_event(event)))
    assert len(texts) == 1


def test_decoding_in_another_tz_gives_the_same_values(set_tz: Callable[[str], None]) -> None:
    set_tz("UTC")
    text = dumps(encode_event(CodecTestEvent(value=ZONE_SAMPLES)))
    set_tz("America/Los_Angeles")
    restored = decoded_value(loads(text))
    for actual, expected in zip(restored, ZONE_SAMPLES, strict=True):
        assert_same_clock(actual, expected)


# --- instants -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Kolkata", datetime(2020, 1, 1, 6, 30, tzinfo=UTC)),
        ("America/Los_Angeles", datetime(2020, 1, 1, 20, 0, tzinfo=UTC)),
        ("UTC", datetime(2020, 1, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_naive_datetime_is_local_time(
    set_tz: Callable[[str], None], zone: str, expected: datetime
) -> None:
    set_tz(zone)
    instant = to_utc(datetime(2020, 1, 1, 12))
    assert instant == expected
    assert instant.tzinfo is UTC


@pytest.mark.parametrize(("fold", "hour"), [(0, 5), (1, 6)])
def test_naive_datetime_respects_fold(set_tz: Callable[[str], None], fold: int, hour: int) -> None:
    set_tz("America/New_York")
    assert to_utc(datetime(2021, 11, 7, 1, 30, fold=fold)) == datetime(
        2021, 11, 7, hour, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
            datetime(2021, 11, 7, 6, 30, tzinfo=UTC),
        ),
        (
            datetime(2020, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15))),
            datetime(2020, 1, 1, 6, 29, 45, tzinfo=UTC),
        ),
        (
            datetime(2020, 1, 1, 12, 0, 0, 7, tzinfo=UTC),
            datetime(2020, 1, 1, 12, 0, 0, 7, tzinfo=UTC),
        ),
    ],
    ids=["zoneinfo-fold", "offset-with-seconds", "utc-microseconds"],
)
def test_aware_datetime_is_the_exact_instant(
    set_tz: Callable[[str], None], when: datetime, expected: datetime
) -> None:
    set_tz("Asia/Kolkata")
    instant = to_utc(when)
    assert instant == expected
    assert instant.utcoffset() == timedelta(0)


def test_range_edges_are_accepted() -> None:
    assert to_utc(MIN_INSTANT) == datetime(1, 1, 2, tzinfo=UTC)
    assert to_utc(MAX_INSTANT) == datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["before-min", "after-max", "underflow", "overflow"],
)
def test_out_of_range_instant_is_unstorable(when: datetime) -> None:
    with pytest.raises(UnstorableEventError):
        to_utc(when)


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Kolkata"])
def test_naive_extremes_are_unstorable_in_any_tz(set_tz: Callable[[str], None], zone: str) -> None:
    set_tz(zone)
    for when in (datetime.min, datetime.max):
        with pytest.raises(UnstorableEventError):
            to_utc(when)


class CodecTestBrokenZone(tzinfo):
    """A tzinfo whose offset lookup fails, as a buggy third-party zone may."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise NotImplementedError("no offsets here")

    def dst(self, dt: datetime | None) -> timedelta:
        raise NotImplementedError("no offsets here")

    def tzname(self, dt: datetime | None) -> str:
        return "broken"


@pytest.mark.parametrize(
    "value",
    [datetime(2020, 1, 1, tzinfo=CodecTestBrokenZone()), date(2020, 1, 1), "2020-01-01"],
    ids=["broken-tzinfo", "date", "str"],
)
def test_value_without_an_instant_is_unstorable(value: Any) -> None:
    with pytest.raises(UnstorableEventError):
        to_utc(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-01T12:00:00+00:00", datetime(2020, 1, 1, 12, tzinfo=UTC)),
        ("2020-01-01T12:00:00Z", datetime(2020, 1, 1, 12, tzinfo=UTC)),
        ("2020-01-01T12:00:00.5+05:30", datetime(2020, 1, 1, 6, 30, 0, 500000, tzinfo=UTC)),
        ("2020-01-01T12:00:00", datetime(2020, 1, 1, 6, 30, tzinfo=UTC)),
        (datetime(2020, 1, 1, 12), datetime(2020, 1, 1, 6, 30, tzinfo=UTC)),
        (datetime(2020, 1, 1, 12, tzinfo=UTC), datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ],
    ids=["iso-utc", "iso-z", "iso-offset", "iso-naive-is-local", "naive", "aware"],
)
def test_parse_timestamp_reads_iso_strings_and_datetimes(
    set_tz: Callable[[str], None], value: Any, expected: datetime
) -> None:
    set_tz("Asia/Kolkata")
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        None,
        1700000000,
        date(2020, 1, 1),
        "0001-01-01T00:00:00+00:00",
        datetime(2020, 1, 1, tzinfo=CodecTestBrokenZone()),
    ],
    ids=["text", "empty", "none", "number", "date", "out-of-range", "broken-tzinfo"],
)
def test_parse_timestamp_returns_none_for_garbage(value: Any) -> None:
    assert parse_timestamp(value) is None
