"""One bad event never takes others down: a value that fails for its data is refused at
publish with a clear error, and every other event is stored; nothing it holds crashes the
process (the crash reproductions run in a subprocess)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database import codec
from llmgine.database.instants import to_utc
from llmgine.database.writer import Writer
from llmgine.errors import RejectedDataError, UnstorableEventError
from llmgine.messages import Event
from llmgine_conformance.backends import SqlBackend
from llmgine_conformance.events import ConformancePayload

HUGE = 10 ** (sys.get_int_max_str_digits() + 10)
"""An int that ``str`` refuses (ValueError): beyond the interpreter's int-to-str digit limit."""


def later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def test_the_writer_drops_only_the_event_that_fails_for_its_data(sql_backend: SqlBackend) -> None:
    store = sql_backend.open()
    writer = Writer(scheduled=store, retry_initial=0.001, retry_max=0.01)
    good = [ConformancePayload(scheduled_time=later(), value=i) for i in range(20)]
    poison = ConformancePayload(scheduled_time=later(), value=HUGE)
    futures = [writer.submit_scheduled([event]) for event in good[:10]]
    futures.append(writer.submit_scheduled([poison]))
    futures += [writer.submit_scheduled([event]) for event in good[10:]]
    try:
        assert writer.flush(30)
        errors = [future.exception() for future in futures]
        assert isinstance(errors[10], UnstorableEventError)
        assert "ConformancePayload.value" in str(errors[10])
        assert errors[:10] + errors[11:] == [None] * 20
        assert writer.stats().retried == 0
        restored = {event.event_id for event in store.take_all()}
        assert restored == {event.event_id for event in good}
    finally:
        writer.stop(5)
        store.close()


async def test_publish_refuses_a_poison_event_and_stores_the_rest(sql_backend: SqlBackend) -> None:
    bus = MessageBus(store=sql_backend.open())
    await bus.start()
    good = [ConformancePayload(scheduled_time=later(), value=i) for i in range(10)]
    try:
        await asyncio.gather(*(bus.publish(event) for event in good[:5]))
        with pytest.raises(UnstorableEventError, match=r"ConformancePayload\.value.*digit"):
            await bus.publish(ConformancePayload(scheduled_time=later(), value=HUGE))
        await asyncio.wait_for(asyncio.gather(*(bus.publish(event) for event in good[5:])), 10)
    finally:
        await bus.stop()
    store = sql_backend.open()
    try:
        assert {e.event_id for e in store.take_all()} == {e.event_id for e in good}
    finally:
        store.close()


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (HUGE, "digit"),
        (nested(101), "nested more than 100 levels deep"),
        (nested(100), None),
    ],
    ids=["huge-int", "too-deep", "deep-enough"],
)
def test_the_codec_decides_what_it_refuses(value: object, why: str | None) -> None:
    event = ConformancePayload(scheduled_time=later(), value=value)
    if why is None:
        assert (
            codec.decode_event(
                "ConformancePayload", codec.loads(codec.dumps(codec.encode_event(event)))
            ).value
            == value
        )
    else:
        with pytest.raises(UnstorableEventError, match=why):
            codec.encode_event(event)
        assert "repr" in codec.dumps(codec.encode_event(event, strict=False))


def test_the_codec_refuses_a_cycle() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(UnstorableEventError, match="contains itself"):
        codec.encode_event(ConformancePayload(scheduled_time=later(), value=cycle))


HOSTILE_LOG_SCRIPT = r"""
import dataclasses
import enum
import sys
from datetime import datetime, timedelta, tzinfo
from llmgine.database import persist_event
from llmgine.database.engine import DatabaseEngine
from llmgine.messages import Event

class Raises(tzinfo):
    def utcoffset(self, dt): raise RuntimeError("no offset for you")
    def tzname(self, dt): return "RAISES"
    def dst(self, dt): return None

class NoOffset(tzinfo):
    def utcoffset(self, dt): return None
    def tzname(self, dt): return None
    def dst(self, dt): return None

class Flips(tzinfo):
    calls = 0
    def utcoffset(self, dt):
        Flips.calls += 1
        if Flips.calls > 1:
            raise RuntimeError("changed its mind")
        return timedelta(0)
    def tzname(self, dt): return "FLIPS"
    def dst(self, dt): return None

class Valueless(enum.Enum):
    A = 1

    @property
    def value(self): raise RuntimeError("no value")

@dataclasses.dataclass(slots=True)
class Unset:
    x: int

unset = Unset(1)
del unset.x

events = {
    "raises": Event(metadata={"at": datetime(2030, 1, 1, tzinfo=Raises())}),
    "enum": Event(metadata={"e": Valueless.A}),
    "slots": Event(metadata={"u": unset}),
    "no-offset": Event(metadata={"at": datetime(2030, 1, 1, 12, tzinfo=NoOffset())}),
    "key": Event(metadata={datetime(2030, 1, 1, tzinfo=Flips()): 1}),
    "stamp": Event(timestamp=datetime(2030, 1, 1, tzinfo=Raises())),  # type: ignore[arg-type]
    "session": Event(session_id="s\ud800"),  # type: ignore[arg-type]
}
events["after"] = Event(metadata={"fine": True})
for event in events.values():
    persist_event(event)
assert DatabaseEngine.flush(30)
entries = {e.event_id: e for e in DatabaseEngine.get_store().read()}
for name, event in events.items():
    print(name, entries[event.event_id].data["metadata"], entries[event.event_id].session_id)
"""


def test_hostile_values_in_an_event_never_crash_the_event_log(
    sql_backend: SqlBackend, tmp_path: Path
) -> None:
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE_LOG_SCRIPT)
    env = {**os.environ, **sql_backend.environment(), "LLMGINE_PERSIST_EVENTS": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert "Raises" in lines["raises"]  # a readable repr, not a crash
    assert "Valueless.A" in lines["enum"]
    assert "unrepresentable Unset" in lines["slots"]
    assert "'2030-01-01T12:00:00'" in lines["no-offset"]  # naive, as Python reads it: not UTC
    assert "+00:00" not in lines["no-offset"]
    assert lines["after"] == "{'fine': True} BUS"
    assert lines["session"].endswith("s\\ud800")


def test_the_event_log_drops_only_an_entry_the_driver_cannot_encode(
    sql_backend: SqlBackend,
) -> None:
    store = sql_backend.open()
    writer = Writer(log=store, retry_initial=0.001, retry_max=0.01)
    good = [Event(metadata={"n": n}) for n in range(20)]
    poison = Event(event_id="id-\ud800")  # a lone surrogate: no driver can encode it
    try:
        for event in [*good[:10], poison, *good[10:]]:
            assert writer.submit_log(event)
        assert writer.flush(30)
        stats = writer.stats()
        assert (stats.written, stats.dropped, stats.retried) == (20, 1, 0)
        assert [e.event_id for e in store.read()] == [e.event_id for e in good]
    finally:
        writer.stop(5)
        store.close()


def test_a_hostile_repr_in_scheduled_time_is_still_a_clear_refusal() -> None:
    class Odd(datetime):
        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    class Raises(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta:
            raise RuntimeError("no offset")

    with pytest.raises(UnstorableEventError, match="cannot be converted to UTC"):
        to_utc(Odd(2030, 1, 1, tzinfo=Raises()))


def test_a_scheduled_event_id_no_driver_can_encode_is_refused_alone(
    sql_backend: SqlBackend,
) -> None:
    store = sql_backend.open()
    writer = Writer(scheduled=store, retry_initial=0.001, retry_max=0.01)
    good = [ConformancePayload(scheduled_time=later(), value=n) for n in range(10)]
    poison = ConformancePayload(event_id="id-\udfff", scheduled_time=later())
    try:
        futures = [writer.submit_scheduled([event]) for event in [*good[:5], poison, *good[5:]]]
        assert writer.flush(30)
        errors = [future.exception() for future in futures]
        assert isinstance(errors.pop(5), UnstorableEventError | RejectedDataError)
        assert errors == [None] * 10
        assert writer.stats().retried == 0
        assert {e.event_id for e in store.take_all()} == {e.event_id for e in good}
    finally:
        writer.stop(5)
        store.close()
