"""The main job runs, and the original import paths still work."""

from __future__ import annotations

import pytest

import llmgine.database as package
import llmgine.database.database as seed_path
from llmgine.demo import main


def test_demo_delivers_every_reminder_after_a_restart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--count", "2", "--spacing", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "all 2 reminders delivered once" in out
    assert out.count("delivered 'reminder") == 2


@pytest.mark.parametrize(
    "name",
    [
        "DatabaseConfig",
        "DatabaseEngine",
        "ScheduledEventRecord",
        "EventRecord",
        "save_unfinished_events",
        "get_and_delete_unfinished_events",
        "persist_event",
        "reset_engine",
        "drop_all",
    ],
)
def test_seed_names_are_the_same_objects_at_both_paths(name: str) -> None:
    assert getattr(seed_path, name) is getattr(package, name)


def test_seed_message_imports() -> None:
    from llmgine.bus.bus import MessageBus
    from llmgine.messages.scheduled_events import (
        EVENT_CLASSES,
        ScheduledEvent,
        register_scheduled_event_class,
    )

    assert EVENT_CLASSES["ScheduledEvent"] is ScheduledEvent
    assert callable(register_scheduled_event_class)
    assert MessageBus().is_running is False
