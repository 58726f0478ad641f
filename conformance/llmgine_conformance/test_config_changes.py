"""The seed functions follow ``LLMGINE_DB_*`` changes on the next call, and lose nothing.

`save_unfinished_events`, `get_and_delete_unfinished_events` and
`persist_event` read the configuration on every call. Changing the URL, the
schema or the event-log switch takes effect on the next call; events saved
before the change stay where they were written, and log entries queued before
it are written where they were headed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmgine.database import (
    DatabaseEngine,
    get_and_delete_unfinished_events,
    persist_event,
    reset_engine,
    save_unfinished_events,
)
from llmgine.messages.events import Event
from llmgine_conformance.backends import ENVIRONMENT, EVENT_LOG, NAMESPACES, Backend, sqlite_backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import ids

CAPABILITY = "config change detection"

pytestmark = pytest.mark.requires(ENVIRONMENT)

FLUSH_S = 10.0


@dataclass(frozen=True)
class Elsewhere:
    """Another location, reached by setting one environment variable to ``value``."""

    variable: str
    value: str
    backend: Backend


@pytest.fixture(
    params=[
        "LLMGINE_DB_URL",
        pytest.param("LLMGINE_DB_SCHEMA", marks=pytest.mark.requires(NAMESPACES)),
    ]
)
def elsewhere(
    request: pytest.FixtureRequest, seed_environment: Backend, tmp_path: Path
) -> Iterator[Elsewhere]:
    """A SQLite file under ``tmp_path`` (URL change) or a sibling namespace (schema change)."""
    variable: str = request.param
    other: Backend
    if variable == "LLMGINE_DB_URL":
        (tmp_path / "elsewhere").mkdir()
        schema = seed_environment.environment()["LLMGINE_DB_SCHEMA"]
        other = sqlite_backend(tmp_path / "elsewhere", schema=schema)
    else:
        other = seed_environment.sibling()
    yield Elsewhere(variable, other.environment()[variable], other)
    reset_engine()
    other.close()


def flush() -> None:
    """Everything queued so far is written, also what a configuration change left behind."""
    assert DatabaseEngine.flush(FLUSH_S)


def test_saved_events_stay_where_they_were_written(
    seed_environment: Backend, elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = ConformanceReminder(text="here"), ConformanceReminder(text="there")
    save_unfinished_events([here])
    monkeypatch.setenv(elsewhere.variable, elsewhere.value)
    save_unfinished_events([there])
    assert elsewhere.backend.open().take_all() == [there]
    assert seed_environment.open().take_all() == [here]


def test_restore_follows_the_change_and_the_change_back(
    seed_environment: Backend, elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = seed_environment.environment()[elsewhere.variable]
    here, there = ConformanceReminder(text="here"), ConformanceReminder(text="there")
    save_unfinished_events([here])
    monkeypatch.setenv(elsewhere.variable, elsewhere.value)
    save_unfinished_events([there])
    assert get_and_delete_unfinished_events() == [there]
    monkeypatch.setenv(elsewhere.variable, original)
    assert get_and_delete_unfinished_events() == [here]


@pytest.mark.requires(EVENT_LOG)
def test_log_entries_queued_before_a_change_are_written_to_the_old_location(
    seed_environment: Backend, elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    before, after = Event(), Event()
    persist_event(before)
    monkeypatch.setenv(elsewhere.variable, elsewhere.value)
    persist_event(after)
    flush()
    assert ids(seed_environment.open().read()) == [before.event_id]
    assert ids(elsewhere.backend.open().read()) == [after.event_id]


@pytest.mark.requires(EVENT_LOG)
def test_turning_the_event_log_on_and_off_takes_effect_on_the_next_call(
    seed_environment: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    off_before, on, off_after = Event(), Event(), Event()
    persist_event(off_before)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    persist_event(on)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "0")
    persist_event(off_after)
    flush()
    assert ids(seed_environment.open().read()) == [on.event_id]
