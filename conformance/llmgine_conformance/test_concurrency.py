"""Many instances on one store: every event is delivered exactly once.

Threads (and, where the backend allows, processes) restore with `take_all`
and claim with `claim` while others add. Whatever the interleaving, the union
of everything taken is everything added, with no event twice.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from llmgine_conformance._workers import (
    FAR_FUTURE,
    POLL_S,
    add_events,
    claim_until,
    take_until,
)
from llmgine_conformance.backends import PROCESSES, Backend
from llmgine_conformance.events import ConformanceReminder
from llmgine_conformance.support import LEASE, ids

CAPABILITY = "concurrent instances"

TIMEOUT_S = 60.0
"""Upper bound for a worker; a hang fails the test instead of blocking the run."""


@contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A pool that, when the test fails (a worker timed out), does not wait for its threads:
    a hung store call would otherwise keep the test, and the run, waiting for ever."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class Run:
    """Threads sharing a record of what was added and what was delivered."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.added: list[str] = []
        self.delivered: list[str] = []
        self.lock = threading.Lock()
        self.adding_done = threading.Event()

    def add(self, batches: int = 20, size: int = 5) -> None:
        store = self.backend.open()
        for _ in range(batches):
            batch = [ConformanceReminder(scheduled_time=datetime.now(UTC)) for _ in range(size)]
            store.add(batch)
            with self.lock:
                self.added += ids(batch)

    def take(self) -> None:
        store = self.backend.open()
        self._until_added(lambda: ids(store.take_all()))

    def claim(self) -> None:
        store, owner = self.backend.open(), f"owner-{uuid.uuid4()}"

        def claim_and_complete() -> list[str]:
            claimed = ids(store.claim(owner, due_before=FAR_FUTURE, lease=LEASE, limit=7))
            assert store.complete(owner, claimed) == len(claimed)
            return claimed

        self._until_added(claim_and_complete)

    def run(self, adders: list[Callable[[], None]], deliverers: list[Callable[[], None]]) -> None:
        """Run every worker on its own thread until the adders are done; re-raise failures."""
        with thread_pool(len(adders) + len(deliverers)) as pool:
            delivering: list[Future[None]] = [pool.submit(work) for work in deliverers]
            try:
                for future in [pool.submit(work) for work in adders]:
                    future.result(timeout=TIMEOUT_S)
            finally:
                self.adding_done.set()
            for future in delivering:
                future.result(timeout=TIMEOUT_S)

    def _until_added(self, deliver: Callable[[], list[str]]) -> None:
        while True:
            last_round = self.adding_done.is_set()
            got = deliver()
            with self.lock:
                self.delivered += got
            if last_round:
                return
            time.sleep(POLL_S)  # a tight loop can starve a writer of SQLite's lock


def test_concurrent_restores_and_claims_deliver_each_event_once(backend: Backend) -> None:
    run = Run(backend)
    run.run([run.add, run.add], [run.take, run.take, run.claim, run.claim])
    leftover = ids(backend.open().take_all())
    assert sorted(run.delivered + leftover) == sorted(run.added)
    assert len(run.added) == 200


def test_concurrent_claims_never_return_the_same_event(backend: Backend) -> None:
    events = [ConformanceReminder(scheduled_time=datetime.now(UTC)) for _ in range(200)]
    backend.open().add(events)
    start = threading.Barrier(4)

    def claim_until_none_left() -> list[str]:
        store, owner = backend.open(), f"owner-{uuid.uuid4()}"
        mine: list[str] = []
        start.wait(timeout=TIMEOUT_S)
        for _ in range(len(events) + 1):  # each round takes at least one of the 200 events
            claimed = store.claim(owner, due_before=FAR_FUTURE, lease=LEASE, limit=5)
            if not claimed:
                return mine
            mine += ids(claimed)
        raise AssertionError(f"claim kept returning events after {len(events)} were claimed")

    with thread_pool(4) as pool:
        results = [pool.submit(claim_until_none_left) for _ in range(4)]
        claims = [future.result(timeout=TIMEOUT_S) for future in results]
    everything = [event_id for mine in claims for event_id in mine]
    assert sorted(everything) == sorted(ids(events))


@pytest.mark.requires(PROCESSES)
def test_separate_processes_deliver_each_event_once(backend: Backend) -> None:
    context = multiprocessing.get_context("spawn")
    open_store = backend.process_opener()
    prefixes = [f"process-{n}-{uuid.uuid4()}" for n in range(2)]
    stop, results = context.Event(), context.Queue()
    adders = [context.Process(target=add_events, args=(open_store, p, 200, 10)) for p in prefixes]
    deliverers = [
        context.Process(target=take_until, args=(open_store, stop, results)),
        context.Process(target=take_until, args=(open_store, stop, results)),
        context.Process(
            target=claim_until, args=(open_store, f"claimer-{uuid.uuid4()}", stop, results)
        ),
    ]
    processes = deliverers + adders
    for process in processes:
        process.start()
    try:
        for process in adders:
            process.join(TIMEOUT_S)
        stop.set()
        delivered = [event_id for _ in deliverers for event_id in results.get(timeout=TIMEOUT_S)]
        for process in deliverers:
            process.join(TIMEOUT_S)
        assert [p.exitcode for p in processes] == [0] * len(processes)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
        results.close()
    delivered += ids(backend.open().take_all())
    assert sorted(delivered) == sorted(f"{p}-{n}" for p in prefixes for n in range(200))
