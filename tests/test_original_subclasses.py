"""Subclasses written the original's way (their own ``__init__`` setting attributes,
``to_dict``/``from_dict`` overrides) never lose data silently: such an event is refused at
publish, and a row the original module stored for one is restored through its
``from_dict``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from llmgine.bus import MessageBus
from llmgine.database import DatabaseEngine
from llmgine.errors import UnstorableEventError
from llmgine.messages import ScheduledEvent
from llmgine.messages.scheduled_events import EVENT_CLASSES, register_scheduled_event_class
from llmgine_conformance.backends import SqlBackend
from original_format import OriginalEvent, build

UseBackend = Callable[[SqlBackend], None]


class OriginalStyleReminder(ScheduledEvent):
    """As the original's users wrote them: no @dataclass, data set in ``__init__``."""

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["scheduled_time"] = self.scheduled_time.isoformat()
        data["text"] = self.text
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OriginalStyleReminder:
        data = dict(data)
        data["scheduled_time"] = datetime.fromisoformat(data["scheduled_time"])
        return cls(**data)


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    before = dict(EVENT_CLASSES)
    register_scheduled_event_class(OriginalStyleReminder)
    yield
    EVENT_CLASSES.clear()
    EVENT_CLASSES.update(before)


async def test_publish_refuses_an_event_whose_data_would_be_dropped(
    sql_backend: SqlBackend, use_backend: UseBackend
) -> None:
    use_backend(sql_backend)
    bus = MessageBus()
    await bus.start()
    try:
        event = OriginalStyleReminder(
            text="call mum", scheduled_time=datetime.now() + timedelta(hours=1)
        )
        with pytest.raises(UnstorableEventError, match=r"OriginalStyleReminder.*'text'"):
            await bus.publish(event)
    finally:
        await bus.stop()
    assert sql_backend.open().take_all() == []


def test_a_row_of_the_original_is_restored_through_from_dict(sql_backend: SqlBackend) -> None:
    due = datetime.now() + timedelta(hours=1)
    row = OriginalEvent(
        scheduled_time=due,
        event_id="reminder",
        class_name="OriginalStyleReminder",
        extra={"text": "call mum"},
    )
    build(sql_backend.url, sql_backend.schema, [row])
    [event] = sql_backend.open().take_all()
    assert isinstance(event, OriginalStyleReminder)
    assert (event.event_id, event.text, event.scheduled_time) == ("reminder", "call mum", due)


async def test_a_refused_event_is_not_logged(
    sql_backend: SqlBackend, use_backend: UseBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(sql_backend)
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    bus = MessageBus()
    await bus.start()
    try:
        event = OriginalStyleReminder(text="x", scheduled_time=datetime.now() + timedelta(hours=1))
        with pytest.raises(UnstorableEventError):
            await bus.publish(event)
    finally:
        await bus.stop()
    assert DatabaseEngine.flush(5)
    assert sql_backend.open().read() == []
