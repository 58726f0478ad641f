"""Durable scheduling: idle CPU, dispatch lateness, and the durable publish rate."""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import Database, Figure, database, stopwatch
from llmgine.bus.bus import MessageBus
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages.scheduled_events import ScheduledEvent

FAR = timedelta(days=30)


def fill_far_future(store: SQLAlchemyStore, count: int) -> None:
    """``count`` events due a month from now (beyond any horizon), in batches."""
    start = datetime.now(UTC) + FAR
    batch = 5_000
    for first in range(0, count, batch):
        store.add(
            [
                ScheduledEvent(scheduled_time=start + timedelta(seconds=i))
                for i in range(first, min(first + batch, count))
            ]
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _idle_cpu(store: SQLAlchemyStore, seconds: float) -> float:
    """Percent of one core this process uses while a started bus has nothing to do."""
    bus = MessageBus(store=store)
    await bus.start()
    await asyncio.sleep(1.0)  # let start-up work finish
    cpu, wall = _cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    used = (_cpu_seconds() - cpu) / (time.perf_counter() - wall) * 100
    await bus.stop()
    return used


def idle_cpu(db: Database, *, pending: int, seconds: float, runs: int) -> Figure:
    with_events = db.store()
    fill_far_future(with_events, pending)
    busy = [asyncio.run(_idle_cpu(with_events, seconds)) for _ in range(runs)]
    with_events.close()
    return Figure(
        group="scheduling",
        name=f"idle CPU, {pending:,} pending far-future events",
        backend=db.name,
        unit="% of a core",
        runs=busy,
        baseline_name="idle bus, none pending",
        baseline_runs=[asyncio.run(_idle_cpu(_empty(db), seconds)) for _ in range(runs)],
        target="<= 0.5 %",
    )


def _empty(db: Database) -> SQLAlchemyStore:
    store = SQLAlchemyStore.from_url(db.url, schema=db.schema + "_empty")
    store.setup()
    return store


async def _lateness(store: SQLAlchemyStore, count: int, over: float) -> list[float]:
    """Milliseconds between each event's due instant and its handler running."""
    late: list[float] = []
    done = asyncio.Event()

    def record(event: ScheduledEvent) -> None:
        late.append((datetime.now(UTC) - event.scheduled_time).total_seconds() * 1000)
        if len(late) == count:
            done.set()

    bus = MessageBus(store=store)
    bus.register_event_handler(ScheduledEvent, record)
    await bus.start()
    first = datetime.now(UTC) + timedelta(seconds=3)
    step = timedelta(seconds=over / count)
    events = [ScheduledEvent(scheduled_time=first + i * step) for i in range(count)]
    for start in range(0, count, 100):  # 100 publishers at a time: group commit
        await asyncio.gather(*(bus.publish(e) for e in events[start : start + 100]))
    await asyncio.wait_for(done.wait(), over + 30)
    await bus.stop()
    return late


def lateness(db: Database, *, pending: int, count: int, over: float, runs: int) -> list[Figure]:
    store = db.store()
    fill_far_future(store, pending)
    p50: list[float] = []
    p99: list[float] = []
    for _ in range(runs):
        late = sorted(asyncio.run(_lateness(store, count, over)))
        p50.append(statistics.median(late))
        p99.append(late[int(len(late) * 0.99) - 1])
    store.close()
    name = f"dispatch lateness of {count:,} events over {over:g} s, {pending:,} waiting"
    return [
        Figure("scheduling", f"{name}, p50", db.name, "ms", p50),
        Figure("scheduling", f"{name}, p99", db.name, "ms", p99, target="<= 5 ms"),
    ]


async def _publish_rate(store: SQLAlchemyStore, publishers: int, total: int) -> float:
    """Durable publishes per second: each publish() returns once its row is committed."""
    bus = MessageBus(store=store)
    await bus.start()
    due = datetime.now(UTC) + FAR

    async def publisher(count: int) -> None:
        for _ in range(count):
            await bus.publish(ScheduledEvent(scheduled_time=due))

    with stopwatch() as elapsed:
        await asyncio.gather(*(publisher(total // publishers) for _ in range(publishers)))
    await bus.stop()
    return (total // publishers * publishers) / elapsed()


def _commit_per_event_rate(store: SQLAlchemyStore, total: int) -> float:
    """The store adding one event per transaction, in a loop: the original module's pattern."""
    due = datetime.now(UTC) + FAR
    events = [ScheduledEvent(scheduled_time=due) for _ in range(total)]
    with stopwatch() as elapsed:
        for event in events:
            store.add([event])
    return total / elapsed()


def publish_rate(db: Database, *, total: int, runs: int) -> list[Figure]:
    """Durable publish with 1 and 100 publishers, against one commit per event.

    Two baselines of "one commit per event": the bus with a single publisher
    (every publish waits for its own commit) and the store adding one event per
    transaction in a loop, with no bus at all. Each run uses fresh tables (a
    namespace of its own) and the three are interleaved, so neither table size
    nor the machine's drift favours one of them.
    """
    loop_rate: list[float] = []
    single: list[float] = []
    hundred: list[float] = []
    for run in range(runs):
        for rates, measure in (
            (loop_rate, lambda store: _commit_per_event_rate(store, total)),
            (single, lambda store: asyncio.run(_publish_rate(store, 1, total))),
            (hundred, lambda store: asyncio.run(_publish_rate(store, 100, total))),
        ):
            store = SQLAlchemyStore.from_url(db.url, schema=f"{db.schema}_p{run}_{len(rates)}")
            store.setup()
            rates.append(measure(store))
            store.drop()
            store.close()
    target = ">= 10x" if db.name == "sqlite" else None
    return [
        Figure("scheduling", "durable publish, 1 publisher", db.name, "events/s", single,
               "store, one commit per event", loop_rate),
        Figure("scheduling", "durable publish, 100 concurrent publishers", db.name, "events/s",
               hundred, "durable publish, 1 publisher", single, target),
        Figure("scheduling", "durable publish, 100 concurrent publishers", db.name, "events/s",
               hundred, "store, one commit per event", loop_rate, target),
    ]  # fmt: skip


def run(
    directory: Path, postgres_url: str | None, *, quick: bool, backends: list[str]
) -> list[Figure]:
    runs = 3 if quick else 5
    pending = 20_000 if quick else 100_000
    figures: list[Figure] = []
    for name in backends:
        with database(name, directory, postgres_url) as db:
            figures += publish_rate(db, total=1_000 if quick else 3_000, runs=runs)
        with database(name, directory, postgres_url) as db:
            figures.append(idle_cpu(db, pending=pending, seconds=3 if quick else 10, runs=runs))
        with database(name, directory, postgres_url) as db:
            figures += lateness(db, pending=pending, count=1_000, over=3.0, runs=runs)
    return figures
