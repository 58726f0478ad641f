"""llmgine-db: diagnostics say what is configured and why it does or does not work."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest

from llmgine.database import save_unfinished_events
from llmgine.database.cli import main
from llmgine.messages import ScheduledEvent
from llmgine_conformance.backends import SqlBackend


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_check_reports_a_healthy_database() -> None:
    save_unfinished_events([ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))])
    status, text = run("check")
    assert status == 0
    assert "schema version: 1" in text
    assert "1 stored, 0 quarantined" in text


def test_check_explains_an_invalid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_SCHEMA", "bad name")
    status, text = run("check")
    assert status == 2
    assert "LLMGINE_DB_SCHEMA" in text


def test_check_names_an_ignored_event_log_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "enabled")
    save_unfinished_events([ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))])
    status, text = run("check")
    assert status == 2
    assert "event log:      off" in text
    assert "IGNORED: LLMGINE_PERSIST_EVENTS='enabled' is not one of" in text
    assert "scheduled:      1 stored" in text  # scheduled-event persistence is still on


def test_check_explains_an_unknown_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", "nosuchdriver://h/db")
    assert run("check")[0] == 2


def test_check_reports_an_unreachable_database_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", "postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2")
    status, text = run("check")
    assert status == 1
    assert "UNAVAILABLE" in text
    assert "hunter2" not in text


def test_quarantined_lists_rows_with_their_reason(
    sqlite_db: SqlBackend, use_backend: object
) -> None:
    use_backend(sqlite_db)  # type: ignore[operator]
    sqlite_db.insert_raw(
        event_id="ghost", event_class_name="Gone", event_data="{}", due=datetime.now()
    )
    sqlite_db.open().take_all()
    status, text = run("quarantined")
    assert status == 0
    assert "ghost\tGone\tunknown event class 'Gone'" in text


def test_check_hides_a_password_given_as_a_query_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "LLMGINE_DB_URL", "postgresql://u@127.0.0.1:1/db?password=hunter2&connect_timeout=2"
    )
    status, text = run("check")
    assert status == 1
    assert "password=***" in text
    assert "hunter2" not in text


def test_help_is_plain_text_with_help_for_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert "check      which database and tables the environment selects" in text
    assert "the stored scheduled events that could not be restored" in text
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "schema version" in capsys.readouterr().out
