"""Message classes and the scheduled-event registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from llmgine.errors import RegistrationError
from llmgine.messages import (
    BUS_SESSION,
    Command,
    CommandResult,
    Event,
    ScheduledEvent,
)
from llmgine.messages.scheduled_events import EVENT_CLASSES, register_scheduled_event_class


@dataclass
class MessagesTestReminder(ScheduledEvent):
    text: str
    tags: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class MessagesTestDuplicate(ScheduledEvent):
    pass


@dataclass(kw_only=True)
class MessagesTestNotScheduled(Event):
    pass


def _make_duplicate_elsewhere() -> type[ScheduledEvent]:
    """A different class that shares MessagesTestDuplicate's ``__name__``."""

    @dataclass(kw_only=True)
    class MessagesTestDuplicate(ScheduledEvent):
        pass

    return MessagesTestDuplicate


def _define_versioned() -> type[ScheduledEvent]:
    """Each call defines the class anew, as a module reload does: same module and qualname."""

    @dataclass(kw_only=True)
    class MessagesTestVersioned(ScheduledEvent):
        pass

    return MessagesTestVersioned


@pytest.fixture(autouse=True)
def registry() -> Iterator[dict[str, type[ScheduledEvent]]]:
    """The registry, restored to its contents before the test."""
    saved = dict(EVENT_CLASSES)
    yield EVENT_CLASSES
    EVENT_CLASSES.clear()
    EVENT_CLASSES.update(saved)


# --- the registry -------------------------------------------------------------------


def test_registry_holds_scheduled_event() -> None:
    assert EVENT_CLASSES["ScheduledEvent"] is ScheduledEvent


def test_registration_stores_the_class_under_its_name() -> None:
    assert register_scheduled_event_class(MessagesTestReminder) is MessagesTestReminder
    assert EVENT_CLASSES["MessagesTestReminder"] is MessagesTestReminder


def test_registration_works_as_a_decorator() -> None:
    @register_scheduled_event_class
    @dataclass(kw_only=True)
    class MessagesTestDecorated(ScheduledEvent):
        pass

    assert EVENT_CLASSES["MessagesTestDecorated"] is MessagesTestDecorated


def test_registering_the_same_class_again_is_a_no_op() -> None:
    register_scheduled_event_class(MessagesTestReminder)
    before = dict(EVENT_CLASSES)
    assert register_scheduled_event_class(MessagesTestReminder) is MessagesTestReminder
    assert before == EVENT_CLASSES


def test_redefinition_with_the_same_module_and_qualname_replaces_the_old_class() -> None:
    first = register_scheduled_event_class(_define_versioned())
    second = register_scheduled_event_class(_define_versioned())
    assert first is not second
    assert EVENT_CLASSES["MessagesTestVersioned"] is second


def test_another_class_with_the_same_name_is_a_registration_error() -> None:
    register_scheduled_event_class(MessagesTestDuplicate)
    other = _make_duplicate_elsewhere()
    with pytest.raises(RegistrationError, match="MessagesTestDuplicate") as caught:
        register_scheduled_event_class(other)
    assert "_make_duplicate_elsewhere" in str(caught.value)
    assert EVENT_CLASSES["MessagesTestDuplicate"] is MessagesTestDuplicate


def test_same_name_from_another_module_is_a_registration_error() -> None:
    register_scheduled_event_class(MessagesTestDuplicate)
    other: type[ScheduledEvent] = dataclass(kw_only=True)(
        type("MessagesTestDuplicate", (ScheduledEvent,), {"__module__": "elsewhere.events"})
    )
    with pytest.raises(RegistrationError, match=r"elsewhere\.events"):
        register_scheduled_event_class(other)
    assert EVENT_CLASSES["MessagesTestDuplicate"] is MessagesTestDuplicate


def test_registration_error_is_also_a_value_error() -> None:
    register_scheduled_event_class(MessagesTestDuplicate)
    with pytest.raises(ValueError, match="already registered"):
        register_scheduled_event_class(_make_duplicate_elsewhere())


@pytest.mark.parametrize(
    "candidate",
    [MessagesTestNotScheduled, Event, object, ScheduledEvent(), "ScheduledEvent", None],
    ids=["event-subclass", "event", "object", "instance", "name", "none"],
)
def test_registering_anything_but_a_scheduled_event_class_is_a_type_error(
    candidate: object,
) -> None:
    before = dict(EVENT_CLASSES)
    with pytest.raises(TypeError):
        register_scheduled_event_class(candidate)  # type: ignore[type-var]
    assert before == EVENT_CLASSES


# --- subclasses ---------------------------------------------------------------------


def test_subclass_may_declare_a_required_field() -> None:
    reminder = MessagesTestReminder(text="water the plants")
    assert reminder.text == "water the plants"
    assert reminder.tags == []


def test_required_subclass_field_must_be_given() -> None:
    with pytest.raises(TypeError, match="text"):
        MessagesTestReminder()  # type: ignore[call-arg]


def test_base_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ScheduledEvent("event-id")  # type: ignore[call-arg]


def test_default_scheduled_time_is_a_naive_datetime() -> None:
    when = ScheduledEvent().scheduled_time
    assert isinstance(when, datetime)
    assert when.tzinfo is None


def test_scheduled_event_is_an_event() -> None:
    assert isinstance(MessagesTestReminder(text="x"), Event)


# --- to_dict / from_dict ------------------------------------------------------------


def test_to_dict_holds_every_field_with_its_value() -> None:
    when = datetime(2030, 5, 1, 8, 0)
    reminder = MessagesTestReminder(text="t", tags=["a"], scheduled_time=when, event_id="id-1")
    data = reminder.to_dict()
    assert data == {
        "event_id": "id-1",
        "timestamp": reminder.timestamp,
        "metadata": {},
        "session_id": BUS_SESSION,
        "scheduled_time": when,
        "text": "t",
        "tags": ["a"],
    }
    assert data["scheduled_time"] is when


def test_from_dict_inverts_to_dict_including_subclass_fields() -> None:
    reminder = MessagesTestReminder(
        text="t",
        tags=["a", "b"],
        metadata={"k": 1},
        session_id="s-9",  # type: ignore[arg-type]
        timestamp=datetime(2024, 1, 1),
    )
    restored = MessagesTestReminder.from_dict(reminder.to_dict())
    assert restored == reminder
    assert type(restored) is MessagesTestReminder


def test_from_dict_ignores_unknown_keys() -> None:
    data = MessagesTestReminder(text="t").to_dict() | {"no_such_field": 1}
    restored = MessagesTestReminder.from_dict(data)
    assert not hasattr(restored, "no_such_field")
    assert restored.text == "t"


def test_from_dict_fills_in_defaults() -> None:
    restored = MessagesTestReminder.from_dict({"text": "t"})
    assert restored.tags == []
    assert restored.session_id == BUS_SESSION


def test_from_dict_without_a_required_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="text"):
        MessagesTestReminder.from_dict({"tags": []})


# --- defaults -----------------------------------------------------------------------


def test_event_id_defaults_to_a_fresh_uuid4() -> None:
    first, second = Event(), Event()
    assert uuid.UUID(first.event_id).version == 4
    assert first.event_id != second.event_id


def test_timestamp_defaults_to_a_naive_iso_string() -> None:
    stamp = Event().timestamp
    assert isinstance(stamp, str)
    assert datetime.fromisoformat(stamp).tzinfo is None


def test_metadata_defaults_to_an_empty_dict_per_event() -> None:
    first, second = Event(), Event()
    first.metadata["k"] = 1
    assert second.metadata == {}


def test_session_defaults_to_the_bus_session() -> None:
    assert Event().session_id == BUS_SESSION == "BUS"


def test_datetime_timestamp_is_kept_as_a_datetime() -> None:
    when = datetime(2024, 1, 1, 12)
    assert Event(timestamp=when).timestamp is when


def test_command_defaults() -> None:
    first, second = Command(), Command()
    assert uuid.UUID(first.command_id).version == 4
    assert first.command_id != second.command_id
    assert first.metadata == {}
    assert first.session_id == BUS_SESSION


def test_command_result_needs_success() -> None:
    with pytest.raises(TypeError, match="success"):
        CommandResult()  # type: ignore[call-arg]
    result = CommandResult(success=False, error="boom")
    assert (result.success, result.result, result.error) == (False, None, "boom")
