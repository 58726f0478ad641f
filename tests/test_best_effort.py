"""Best-effort: no database fault raises out of the seed API, none loses a scheduled event,
and the URL's password never reaches a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database import (
    DatabaseEngine,
    api,
    drop_all,
    engine,
    get_and_delete_unfinished_events,
    persist_event,
    save_unfinished_events,
)
from llmgine.messages import Event, ScheduledEvent

SECRET = "s3cretpw"
UNREACHABLE = f"postgresql://llmgine:{SECRET}@127.0.0.1:1/nodb?connect_timeout=2"


@pytest.fixture(autouse=True)
def quick_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "SAVE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(engine, "FLUSH_ON_CHANGE_S", 0.5)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET not in text, f"password leaked in log: {text!r}"


def future_event() -> ScheduledEvent:
    return ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))


@pytest.mark.parametrize(
    "url",
    [UNREACHABLE, "nosuchdriver://user:s3cretpw@host/db", "sqlite:////nonexistent/dir/x.db"],
    ids=["unreachable", "unknown-driver", "unopenable-file"],
)
def test_seed_functions_never_raise(
    url: str, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", url)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    save_unfinished_events([future_event()])
    assert get_and_delete_unfinished_events() == []
    persist_event(Event())
    drop_all()
    assert any(r.levelno >= logging.WARNING for r in logs.records)


@pytest.mark.parametrize(("name", "value"), [("LLMGINE_DB_SCHEMA", "no good")])
def test_bad_configuration_disables_persistence_with_one_error(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(name, value)
    for _ in range(3):
        save_unfinished_events([future_event()])
        assert get_and_delete_unfinished_events() == []
        persist_event(Event())
    errors = [r for r in logs.records if r.levelno >= logging.ERROR and name in r.getMessage()]
    assert len(errors) == 1


def test_repeated_faults_are_reported_once(
    monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", UNREACHABLE)
    for _ in range(5):
        get_and_delete_unfinished_events()
    restores = [r for r in logs.records if "not restored" in r.getMessage()]
    assert len(restores) == 1


def test_a_save_during_an_outage_is_written_once_the_database_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "not-yet"
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{missing / 'bus.db'}")
    event = future_event()
    save_unfinished_events([event])  # the directory is missing: SQLite cannot open the file
    assert get_and_delete_unfinished_events() == []
    missing.mkdir()  # the "database" comes back
    assert DatabaseEngine.get_writer().flush(10)
    assert get_and_delete_unfinished_events() == [event]


def test_a_scheduled_event_that_cannot_be_stored_is_logged_not_raised(
    logs: pytest.LogCaptureFixture,
) -> None:
    bad = ScheduledEvent(
        scheduled_time=datetime.now() + timedelta(hours=1), metadata={"x": object()}
    )
    good = future_event()
    save_unfinished_events([bad, good])
    assert any("metadata" in r.getMessage() for r in logs.records if r.levelno >= logging.ERROR)
    assert get_and_delete_unfinished_events() == [good]


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLMGINE_PERSIST_EVENTS", "enabled"), ("LLMGINE_LOG_RETENTION", "30days"),
     ("LLMGINE_LOG_MAX_ROWS", "lots")],
)  # fmt: skip
def test_an_invalid_event_log_setting_keeps_scheduled_events_durable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(name, value)
    event = future_event()
    for _ in range(3):
        save_unfinished_events([event])
        assert get_and_delete_unfinished_events() == [event]
        persist_event(Event())
    errors = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"llmgine event-log setting {name}={value!r} ")
    assert "ignored" in errors[0]
    assert "scheduled events are persisted" in errors[0]


async def test_a_typo_in_the_log_flag_keeps_the_bus_scheduling_durable(
    monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "enabled")
    monkeypatch.setenv("LLMGINE_LOG_RETENTION", "30days")
    event = future_event()
    bus = MessageBus()
    await bus.start()
    await bus.publish(event)
    await bus.stop()  # saved for the next start
    assert get_and_delete_unfinished_events() == [event]
    ignored = [r.getMessage() for r in logs.records if "ignored" in r.getMessage()]
    assert len(ignored) == 2, ignored  # each invalid setting said once
