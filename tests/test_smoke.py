from __future__ import annotations

from datetime import datetime, timedelta

from llmgine.messages import ScheduledEvent
from llmgine_conformance.backends import Backend


def test_store_round_trip(backend: Backend) -> None:
    store = backend.open()
    event = ScheduledEvent(scheduled_time=datetime.now() + timedelta(hours=1))
    store.add([event])
    store.close()
    again = backend.open()
    assert again.take_all() == [event]
    again.close()
