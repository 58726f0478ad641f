"""Work done by the processes `test_concurrency` spawns; spawned children import it from here."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as StopSignal
from typing import Any

from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import LEASE

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
POLL_S = 0.002
"""Pause between a taker's rounds: a tight loop can starve a writer of SQLite's lock."""


def add_events(open_store: Callable[[], Any], prefix: str, count: int, batch: int) -> None:
    """Add ``count`` events with ids ``{prefix}-{n}``, ``batch`` per `add`."""
    store = open_store()
    try:
        due = datetime.now(UTC)
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            store.add(
                [
                    ConformanceReminder(event_id=f"{prefix}-{n}", scheduled_time=due)
                    for n in range(start, stop)
                ]
            )
    finally:
        store.close()


def take_until(open_store: Callable[[], Any], stop: StopSignal, results: Queue[list[str]]) -> None:
    """`take_all` in a loop until ``stop`` is set, then once more; put every id taken."""
    store = open_store()
    _deliver_until(lambda: [event.event_id for event in store.take_all()], store, stop, results)


def claim_until(
    open_store: Callable[[], Any], owner: str, stop: StopSignal, results: Queue[list[str]]
) -> None:
    """`claim` and `complete` in a loop until ``stop`` is set, then once more; put every id."""
    store = open_store()

    def claim_and_complete() -> list[str]:
        claimed = store.claim(owner, due_before=FAR_FUTURE, lease=LEASE, limit=7)
        store.complete(owner, [event.event_id for event in claimed])
        return [event.event_id for event in claimed]

    _deliver_until(claim_and_complete, store, stop, results)


def _deliver_until(
    deliver: Callable[[], list[str]], store: Any, stop: StopSignal, results: Queue[list[str]]
) -> None:
    delivered: list[str] = []
    try:
        while True:
            last_round = stop.is_set()
            delivered += deliver()
            if last_round:
                break
            time.sleep(POLL_S)
    finally:
        store.close()
        results.put(delivered)
