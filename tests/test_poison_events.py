"""One bad event never takes others down: a value that fails for its data is refused at
publish with a clear error, and every other event is stored; nothing it holds crashes the
process (the crash reproductions run in a subprocess)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database import codec
from llmgine.database.writer import Writer
from llmgine.errors import UnstorableEventError
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
