"""The background writer: batches, group commit, retries, isolation of bad entries, bounds."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import pytest

from llmgine.database.memory import MemoryStore
from llmgine.database.writer import Writer
from llmgine.errors import RejectedDataError, StoreUnavailableError, UnstorableEventError
from llmgine.messages import Event, ScheduledEvent


class FlakyStore(MemoryStore):
    """A memory store whose writes fail the first ``failures`` times, or while ``gate`` is closed,
    or whenever a batch holds an event whose id starts with "poison"."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def _check(self, events: Sequence[Event]) -> None:
        self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("injected outage")
        if any(e.event_id.startswith("poison") for e in events):
            raise RejectedDataError("injected refusal")
        self.batches.append(len(events))

    def append(self, events: Sequence[Event]) -> None:
        self._check(events)
        super().append(events)

    def add(self, events: Sequence[ScheduledEvent]) -> None:
        self._check(events)
        super().add(events)


@pytest.fixture
def store() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def writer(store: FlakyStore) -> Iterator[Writer]:
    writer = Writer(log=store, scheduled=store, retry_initial=0.001, retry_max=0.01)
    yield writer
    store.gate.set()
    writer.stop(5)


def later() -> datetime:
    return datetime.now() + timedelta(hours=1)


def test_log_entries_are_written_in_order_in_batches(store: FlakyStore, writer: Writer) -> None:
    events = [Event() for _ in range(5000)]
    store.gate.clear()  # let the queue fill up so batches form
    for event in events:
        assert writer.submit_log(event)
    store.gate.set()
    assert writer.flush(30)
    assert [e.event_id for e in store.read()] == [e.event_id for e in events]
    assert len(store.batches) < 100
    assert writer.stats().written == 5000


def test_a_full_queue_drops_new_entries_and_counts_them(store: FlakyStore) -> None:
    writer = Writer(log=store, max_queue=10, max_batch=1)
    store.gate.clear()  # the writer holds at most one entry, blocked, besides the queue
    accepted = [writer.submit_log(Event()) for _ in range(30)]
    dropped = accepted.count(False)
    assert 19 <= dropped <= 20
    assert writer.stats().dropped == dropped
    store.gate.set()
    assert writer.stop(5)
    assert len(store.read()) == 30 - dropped


def test_transient_faults_are_retried_until_written(writer: Writer, store: FlakyStore) -> None:
    store.failures = 3
    event = Event()
    writer.submit_log(event)
    assert writer.flush(10)
    assert [e.event_id for e in store.read()] == [event.event_id]
    stats = writer.stats()
    assert stats.retried == 3
    assert "injected outage" in (stats.last_error or "")


def test_a_refused_entry_is_isolated_and_dropped(writer: Writer, store: FlakyStore) -> None:
    store.gate.clear()
    events = (
        [Event() for _ in range(7)] + [Event(event_id="poison-1")] + [Event() for _ in range(7)]
    )
    for event in events:
        writer.submit_log(event)
    store.gate.set()
    assert writer.flush(10)
    assert len(store.read()) == 14
    assert writer.stats().dropped == 1


def test_scheduled_submission_resolves_once_committed(writer: Writer, store: FlakyStore) -> None:
    event = ScheduledEvent(scheduled_time=later())
    writer.submit_scheduled([event]).result(timeout=10)
    assert store.take_all() == [event]
    assert writer.stats().scheduled_written == 1


def test_concurrent_scheduled_submissions_share_a_transaction(
    writer: Writer, store: FlakyStore
) -> None:
    store.gate.clear()
    futures = [
        writer.submit_scheduled([ScheduledEvent(scheduled_time=later())]) for _ in range(100)
    ]
    store.gate.set()
    for future in futures:
        future.result(timeout=10)
    assert len(store.batches) <= 2
    assert len(store.take_all()) == 100


def test_a_refused_scheduled_event_fails_only_its_submission(
    writer: Writer, store: FlakyStore
) -> None:
    store.gate.clear()
    good = writer.submit_scheduled([ScheduledEvent(scheduled_time=later())])
    mixed_ok = ScheduledEvent(scheduled_time=later())
    mixed = writer.submit_scheduled(
        [ScheduledEvent(event_id="poison-2", scheduled_time=later()), mixed_ok]
    )
    store.gate.set()
    good.result(timeout=10)
    with pytest.raises(RejectedDataError):
        mixed.result(timeout=10)
    assert mixed_ok.event_id in {e.event_id for e in store.take_all()}


def test_an_unstorable_scheduled_event_fails_its_submission(writer: Writer) -> None:
    bad = ScheduledEvent(scheduled_time=later(), metadata={"x": object()})
    with pytest.raises(UnstorableEventError, match="metadata"):
        writer.submit_scheduled([bad]).result(timeout=10)


def test_stopping_during_an_outage_fails_what_is_left(store: FlakyStore) -> None:
    writer = Writer(log=store, scheduled=store, retry_initial=0.001, retry_max=0.01)
    store.failures = 10**9
    future = writer.submit_scheduled([ScheduledEvent(scheduled_time=later())])
    writer.submit_log(Event())
    assert not writer.flush(0.2)
    assert not writer.stop(0.2)
    with pytest.raises(StoreUnavailableError):
        future.result(timeout=5)
    assert writer.stats().dropped >= 1
    assert not writer.submit_log(Event())
    with pytest.raises(StoreUnavailableError):
        writer.submit_scheduled([ScheduledEvent(scheduled_time=later())]).result(timeout=1)


def test_flush_without_submissions_returns_at_once() -> None:
    assert Writer(log=MemoryStore()).flush(0)


def test_a_writer_without_a_scheduled_store_refuses_scheduled_events() -> None:
    writer = Writer(log=MemoryStore())
    with pytest.raises(StoreUnavailableError):
        writer.submit_scheduled([ScheduledEvent(scheduled_time=later())]).result(timeout=1)


def test_an_idle_writer_wakes_for_every_submission(store: FlakyStore, writer: Writer) -> None:
    """Submitting takes no lock; an entry that arrives as the writer goes idle is not missed."""
    for _ in range(300):
        event = Event()
        assert writer.submit_log(event)
        assert writer.flush(5), "an entry was left in the queue with the writer asleep"
    assert writer.stats().written == 300


def test_entries_racing_a_stop_are_written_or_counted_as_dropped(store: FlakyStore) -> None:
    writer = Writer(log=store, max_queue=1_000_000)
    writer.submit_log(Event())
    accepted = [0] * 4
    go = threading.Event()

    def submit(slot: int) -> None:
        go.wait()
        for _ in range(20_000):
            accepted[slot] += writer.submit_log(Event())

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    go.set()
    writer.stop(0.01)
    for thread in threads:
        thread.join()
    stats = writer.stats()
    assert stats.queue_depth == 0
    assert len(store.read()) + stats.dropped == 1 + 80_000
    assert len(store.read()) <= 1 + sum(accepted)
