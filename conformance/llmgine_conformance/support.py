"""Helpers the suite's modules share: owners, a lease, ids, instants, a clock, a process zone.

Backend authors reading a test find every helper it uses here or in the test's
own module, never a near copy elsewhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

OWNER = "owner-a"
"""The owner a test claims with."""
OTHER = "owner-b"
"""A second owner: a rival instance, or the one that took over."""
LEASE = timedelta(minutes=5)
"""A lease far longer than any test, so it expires only when a clock is moved."""


def ids(events: Iterable[Any]) -> list[str]:
    """The ``event_id`` of each of ``events``, in their order."""
    return [event.event_id for event in events]


def sorted_ids(events: Iterable[Any]) -> list[str]:
    """The ``event_id`` of each of ``events``, sorted: for comparing without order."""
    return sorted(event.event_id for event in events)


def due_in(seconds: float) -> datetime:
    """The aware UTC instant ``seconds`` from now (negative: in the past)."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


def restart(backend: Any, store: Any) -> Any:
    """Close ``store`` and open a new one on ``backend``'s same location."""
    store.close()
    return backend.open()


class FakeClock:
    """A clock the test moves by hand, for leases that expire without sleeping.

    It starts at a whole second, so every database keeps each instant it
    hands out (and any whole-microsecond step from it) exactly.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@contextmanager
def process_time_zone(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``name`` (``TZ`` + ``tzset``)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
