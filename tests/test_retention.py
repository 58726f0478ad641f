"""Event-log retention: parsed from the environment, applied by the writer in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database import DatabaseEngine, persist_event
from llmgine.database.config import DatabaseConfig
from llmgine.database.memory import MemoryStore
from llmgine.database.retention import Retention, parse_duration
from llmgine.database.writer import Writer
from llmgine.errors import ConfigurationError
from llmgine.messages import Event


def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1w 2d", timedelta(days=9)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_durations_are_read_with_their_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30 days", "3x", "-5d", "1d and more"])
def test_a_malformed_duration_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("options", [{"max_age": timedelta(0)}, {"max_rows": -1}, {"every": 0.0}])
def test_nonsense_retention_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Retention(**options)  # type: ignore[arg-type]


def test_the_writer_keeps_the_log_under_its_row_cap() -> None:
    log = MemoryStore()
    writer = Writer(log=log, retention=Retention(max_rows=10, every=0.05))
    events = [Event() for _ in range(35)]
    for event in events:
        writer.submit_log(event)
    assert writer.flush(10)
    wait_until(lambda: len(log.read()) == 10)
    assert [e.event_id for e in log.read()] == [e.event_id for e in events[-10:]]
    assert writer.stop(5)


def test_the_writer_purges_entries_older_than_the_age_cap() -> None:
    log = MemoryStore()
    old = [Event(timestamp=datetime.now(UTC) - timedelta(days=2)) for _ in range(5)]
    new = [Event() for _ in range(3)]
    writer = Writer(log=log, retention=Retention(max_age=timedelta(days=1), every=0.05))
    for event in old + new:
        writer.submit_log(event)
    assert writer.flush(10)
    wait_until(lambda: len(log.read()) == 3)
    assert {e.event_id for e in log.read()} == {e.event_id for e in new}
    assert writer.stop(5)


def test_retention_is_applied_under_steady_load() -> None:
    log = MemoryStore()
    writer = Writer(log=log, retention=Retention(max_rows=5, every=0.05), max_batch=10)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # the writer is never idle for long
        writer.submit_log(Event())
        time.sleep(0.0005)
    assert writer.flush(10)
    wait_until(lambda: len(log.read()) <= 5)
    assert writer.stop(5)


def test_retention_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    monkeypatch.setenv("LLMGINE_LOG_RETENTION", "7d")
    monkeypatch.setenv("LLMGINE_LOG_MAX_ROWS", "1000")
    config = DatabaseConfig()
    assert config.log_retention == Retention(max_age=timedelta(days=7), max_rows=1000)
    persist_event(Event())
    assert DatabaseEngine.get_writer()._retention == config.log_retention


def test_changing_the_retention_is_a_configuration_change(monkeypatch: pytest.MonkeyPatch) -> None:
    before = DatabaseConfig()
    monkeypatch.setenv("LLMGINE_LOG_MAX_ROWS", "10")
    assert DatabaseConfig().has_changed(before)


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLMGINE_LOG_RETENTION", "forever"), ("LLMGINE_LOG_RETENTION", "30days"),
     ("LLMGINE_LOG_RETENTION", "0d"), ("LLMGINE_LOG_MAX_ROWS", "many"),
     ("LLMGINE_LOG_MAX_ROWS", "-1")],
)  # fmt: skip
def test_invalid_retention_in_the_environment_is_ignored_saying_so(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    monkeypatch.setenv(name, value)
    config = DatabaseConfig()
    assert config.persist_events  # the log stays on, keeping everything
    assert config.log_retention is None
    [ignored] = config.ignored
    assert ignored.startswith(f"{name}={value!r} is ")
    assert "ignored, log entries are kept whatever their" in ignored


def test_a_valid_limit_beside_an_invalid_one_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_LOG_RETENTION", "30days")
    monkeypatch.setenv("LLMGINE_LOG_MAX_ROWS", "1000")
    assert DatabaseConfig().log_retention == Retention(max_rows=1000)


async def test_a_bus_applies_the_retention_of_its_event_log() -> None:
    log = MemoryStore()
    retention = Retention(max_rows=3, every=0.01)
    bus = MessageBus(store=MemoryStore(), event_log=log, log_retention=retention)
    await bus.start()
    for _ in range(10):
        await bus.publish(Event())
    await asyncio.to_thread(wait_until, lambda: len(log.read()) == 3)
    await bus.stop()
    assert len(log.read()) == 3


def test_retention_needs_a_store_on_the_bus() -> None:
    with pytest.raises(ValueError, match="log_retention"):
        MessageBus(log_retention=Retention(max_rows=1))
