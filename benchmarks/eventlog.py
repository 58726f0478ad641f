"""The event log and the bus: ingest against the raw driver, throughput, round trips, restore."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.baselines import finish, raw_writer, store_settings
from benchmarks.harness import Database, Figure, database, stopwatch
from llmgine.bus.bus import MessageBus
from llmgine.database import (
    DatabaseEngine,
    codec,
    get_and_delete_unfinished_events,
    persist_event,
    reset_engine,
    save_unfinished_events,
)
from llmgine.database.log_rows import LOG_COLUMNS, log_values
from llmgine.database.memory import MemoryStore
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

SCHEDULED_COLUMNS = ("event_id", "event_class_name", "event_data", "scheduled_time", "created_at")


def _events(count: int) -> list[Event]:
    return [Event(session_id="s-1") for _ in range(count)]  # type: ignore[arg-type]


@contextmanager
def _namespace(db: Database) -> Iterator[SQLAlchemyStore]:
    """A store in a fresh namespace of ``db``, its tables created; dropped afterwards."""
    store = SQLAlchemyStore.from_url(db.url, schema=f"{db.schema}_{uuid.uuid4().hex[:6]}")
    store.setup()
    try:
        yield store
    finally:
        store.drop()
        store.close()


@contextmanager
def _environment(db: Database, schema: str, persist: bool) -> Iterator[None]:
    saved = {
        k: os.environ.get(k)
        for k in ("LLMGINE_DB_URL", "LLMGINE_DB_SCHEMA", "LLMGINE_PERSIST_EVENTS")
    }
    os.environ.update(
        LLMGINE_DB_URL=db.url,
        LLMGINE_DB_SCHEMA=schema,
        LLMGINE_PERSIST_EVENTS="1" if persist else "0",
    )
    reset_engine()
    try:
        yield
    finally:
        reset_engine()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the raw driver ---------------------------------------------------------------------


def _log_rows(events: list[Event]) -> list[tuple[Any, ...]]:
    """The rows the store writes for ``events``: `log_values` and the time of writing."""
    now = datetime.now(UTC)
    return [(*log_values(e, now), now) for e in events]


def _raw_log_runs(db: Database, count: int, runs: int) -> tuple[list[float], str]:
    """Rows/s of the raw driver writing finished log rows in one transaction, and its setup."""
    rates, setup = [], ""
    for _ in range(runs):
        with _namespace(db) as store, raw_writer(store, store.tables.log) as raw:
            rows = finish(store, _log_rows(_events(count)))  # before the clock
            rates.append(count / raw.write(LOG_COLUMNS, rows))
            assert raw.count() == count
            setup = f"{raw.driver}: {raw.describe()}; the store: {store_settings(store)}"
    return rates, setup


# --- log ingest -------------------------------------------------------------------------


def _persist_event_rate(db: Database, count: int) -> float:
    """Events/s from the first `persist_event` until every row is committed: `flush`
    returns after the writer's last COMMIT; another connection then counts them."""
    events = _events(count)
    with (
        _namespace(db) as store,
        _environment(db, _schema_of(store), persist=True),
        raw_writer(store, store.tables.log) as other,
    ):
        DatabaseEngine.get_store().setup()
        with stopwatch() as elapsed:
            for event in events:
                persist_event(event)
            assert DatabaseEngine.flush(120)
        assert other.count() == count, "not every row is committed"
    return count / elapsed()


def _schema_of(store: SQLAlchemyStore) -> str:
    naming = store.naming
    return naming.schema or naming.prefix.rstrip("_")


async def _bus_log_rate(store: SQLAlchemyStore, count: int) -> float:
    events = _events(count)
    bus = MessageBus(store=MemoryStore(), event_log=store)
    await bus.start()
    with stopwatch() as elapsed:
        for event in events:
            await bus.publish(event, await_processing=False)
        await bus.stop()  # handles what is queued and flushes the event log
    return count / elapsed()


def _bus_ingest_rate(db: Database, count: int) -> float:
    """Events/s from the first publish until `stop` returned, which is after the writer's
    last COMMIT; another connection then counts the rows."""
    with _namespace(db) as store, raw_writer(store, store.tables.log) as other:
        rate = asyncio.run(_bus_log_rate(store, count))
        assert other.count() == count, "not every row is committed"
    return rate


def ingest(db: Database, *, count: int, runs: int) -> list[Figure]:
    """Log ingest until committed, against the raw driver writing the same finished rows.

    The three are interleaved run by run, so the machine's drift hits each alike.
    """
    raw: list[float] = []
    through_persist: list[float] = []
    through_bus: list[float] = []
    setup = ""
    for _ in range(runs):
        rates, setup = _raw_log_runs(db, count, 1)
        raw += rates
        through_persist.append(_persist_event_rate(db, count))
        through_bus.append(_bus_ingest_rate(db, count))
    baseline = "raw psycopg COPY" if db.name == "postgres" else "raw sqlite3 executemany"
    return [
        Figure("event log", "log ingest through persist_event, until committed", db.name,
               "events/s", through_persist, baseline, raw, ">= 0.5x", setup),
        Figure("event log", "log ingest through the bus, until committed", db.name,
               "events/s", through_bus, baseline, raw, ">= 0.5x", setup),
    ]  # fmt: skip


# --- the bus ---------------------------------------------------------------------------


def _work(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def _throughput(
    count: int, work: float, event_log: SQLAlchemyStore | None
) -> tuple[float, float]:
    """(events/s until every handler ran, events/s until `stop` returned: with the log on,
    that is after the writer's last COMMIT, and another connection then counts the rows)."""
    bus = MessageBus(store=MemoryStore(), event_log=event_log)
    bus.register_event_handler(Event, (lambda _e: _work(work)) if work else (lambda _e: None))
    events = _events(count)
    await bus.start()
    with stopwatch() as elapsed:
        for event in events:
            await bus.publish(event, await_processing=False)
        await bus.wait_for_events()
        handled = elapsed()
        await bus.stop()  # flushes the event log
    if event_log is not None:
        with raw_writer(event_log, event_log.tables.log) as other:
            assert other.count() == count, "the event log dropped entries"
    return count / handled, count / elapsed()


def bus_throughput(db: Database, *, count: int, runs: int) -> list[Figure]:
    """The bus with the event log on against off, with a trivial handler and ~100 us of work.

    Two readings of "throughput": events handled per second while the log is
    written in the background (the bus's own rate, labelled "handled": rows may
    still be on their way), and events per second until `stop` returned, every
    row committed ("until committed"; with the log off, until `stop` returned).
    """
    figures = []
    for work, label, handled_target, target, events in (
        (0.0, "trivial handler", ">= 0.7x", ">= 0.5x", count * 4),  # a run lasts as long ...
        (100e-6, "100 us handler", ">= 0.95x", ">= 0.95x", count),  # ... as one of 100 us each
    ):
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        for _ in range(runs):  # interleaved, so drift hits both alike
            off.append(asyncio.run(_throughput(events, work, None)))
            with _namespace(db) as store:
                on.append(asyncio.run(_throughput(events, work, store)))
        figures += [
            Figure("bus", f"throughput, {label}, log on: handled (not yet committed)",
                   db.name, "events/s", [r[0] for r in on], "log off", [r[0] for r in off],
                   handled_target),
            Figure("bus", f"throughput, {label}, log on: until committed", db.name,
                   "events/s", [r[1] for r in on], "log off, until stop() returned",
                   [r[1] for r in off], target),
        ]  # fmt: skip
    return figures


async def _round_trips(count: int) -> float:
    bus = MessageBus(store=MemoryStore())
    bus.register_event_handler(Event, lambda _e: None)
    await bus.start()
    events = _events(count)
    with stopwatch() as elapsed:
        for event in events:
            await bus.publish(event, await_processing=True)
    await bus.stop()
    return count / elapsed()


def round_trips(*, count: int, runs: int) -> Figure:
    return Figure("bus", "publish(await_processing=True) round trips", "-", "round trips/s",
                  [asyncio.run(_round_trips(count)) for _ in range(runs)],
                  target=">= 10,000/s")  # fmt: skip


# --- save and restore ------------------------------------------------------------------------


def _scheduled(count: int) -> list[ScheduledEvent]:
    due = datetime.now(UTC) + timedelta(days=30)
    return [ScheduledEvent(scheduled_time=due + timedelta(seconds=i)) for i in range(count)]


def _save_restore_rate(db: Database, count: int) -> float:
    events = _scheduled(count)
    with _namespace(db) as store, _environment(db, _schema_of(store), persist=False):
        DatabaseEngine.get_store().setup()
        with stopwatch() as elapsed:
            save_unfinished_events(events)
            restored = get_and_delete_unfinished_events()
        assert len(restored) == count, len(restored)
    return count / elapsed()


def _raw_save_restore_runs(db: Database, count: int, runs: int) -> tuple[list[float], str]:
    """The raw driver inserting finished rows, then deleting them returning, one transaction
    each; the rows are the store's (its JSON, its instants), made before the clock."""
    rates, setup = [], ""
    for _ in range(runs):
        now = datetime.now(UTC)
        scheduled = [
            (e.event_id, type(e).__name__, codec.dumps(codec.encode_event(e)), e.scheduled_time,
             now)
            for e in _scheduled(count)
        ]  # fmt: skip
        with _namespace(db) as store, raw_writer(store, store.tables.scheduled) as raw:
            rows = finish(store, scheduled)
            seconds = raw.write(SCHEDULED_COLUMNS, rows) + raw.take_all(SCHEDULED_COLUMNS[:4])
            assert raw.count() == 0
            setup = f"{raw.driver}, then DELETE RETURNING: {raw.describe()}"
        rates.append(count / seconds)
    return rates, setup


def save_restore(db: Database, *, count: int, runs: int) -> Figure:
    raw, setup = _raw_save_restore_runs(db, count, runs)
    return Figure("event log", f"save then restore {count:,} scheduled events", db.name, "events/s",
                  [_save_restore_rate(db, count) for _ in range(runs)],
                  "raw driver: insert, then delete returning", raw,
                  ">= 0.33x (within 3x)", setup)  # fmt: skip


def run(
    directory: Path, postgres_url: str | None, *, quick: bool, backends: list[str]
) -> list[Figure]:
    runs = 3 if quick else 5
    count = 20_000 if quick else 50_000
    figures: list[Figure] = []
    for name in backends:
        with database(name, directory, postgres_url) as db:
            figures += ingest(db, count=count, runs=runs)
            figures.append(save_restore(db, count=20_000 if quick else 100_000, runs=runs))
    with database("sqlite", directory, postgres_url) as db:
        figures += bus_throughput(db, count=count // 2, runs=runs)
    figures.append(round_trips(count=count // 2, runs=runs))
    return figures
