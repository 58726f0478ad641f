"""The event log and the bus: ingest against the raw driver, throughput, round trips, restore."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

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
from llmgine.database._driver_rows import driver_instant
from llmgine.database.instants import parse_timestamp
from llmgine.database.log_rows import LOG_COLUMNS
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


def _raw_write(
    store: SQLAlchemyStore, table: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """The raw driver writes ``rows`` in one transaction: sqlite3 executemany, or psycopg COPY."""
    url = store.engine.url
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
            name = f'"{table.schema}"."{table.name}"'
            with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    instant = driver_instant(store.engine.dialect)
    assert instant is not None
    prepared = [tuple(instant(v) if isinstance(v, datetime) else v for v in row) for row in rows]
    connection = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("BEGIN")
        marks = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", prepared
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def _log_rows(events: list[Event]) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (e.event_id, type(e).__name__, codec.dumps(codec.encode_event(e, strict=False)),
         e.session_id, parse_timestamp(e.timestamp), now)
        for e in events
    ]  # fmt: skip


def _raw_log_rate(db: Database, count: int) -> float:
    rows = _log_rows(_events(count))  # prepared before timing: the raw driver gets finished rows
    with _namespace(db) as store, stopwatch() as elapsed:
        _raw_write(store, store.tables.log, LOG_COLUMNS, rows)
    return count / elapsed()


# --- log ingest -------------------------------------------------------------------------


def _persist_event_rate(db: Database, count: int) -> float:
    events = _events(count)
    with _namespace(db) as store, _environment(db, _schema_of(store), persist=True):
        DatabaseEngine.get_store().setup()
        with stopwatch() as elapsed:
            for event in events:
                persist_event(event)
            assert DatabaseEngine.flush(120)
        assert len(store.read()) == count
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
    with _namespace(db) as store:
        rate = asyncio.run(_bus_log_rate(store, count))
        assert len(store.read()) == count
    return rate


def ingest(db: Database, *, count: int, runs: int) -> list[Figure]:
    raw = [_raw_log_rate(db, count) for _ in range(runs)]
    baseline = "raw psycopg COPY" if db.name == "postgres" else "raw sqlite3 executemany"
    target = ">= 0.4x" if db.name == "postgres" else ">= 0.5x"
    return [
        Figure("event log", "log ingest through persist_event", db.name, "events/s",
               [_persist_event_rate(db, count) for _ in range(runs)], baseline, raw, target),
        Figure("event log", "log ingest through the bus", db.name, "events/s",
               [_bus_ingest_rate(db, count) for _ in range(runs)], baseline, raw, target),
    ]  # fmt: skip


# --- the bus ---------------------------------------------------------------------------


def _work(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def _throughput(
    count: int, work: float, event_log: SQLAlchemyStore | None
) -> tuple[float, float]:
    """(events/s until every handler ran, events/s until the event log was written too)."""
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
        assert len(event_log.read()) == count, "the event log dropped entries"
    return count / handled, count / elapsed()


def bus_throughput(db: Database, *, count: int, runs: int) -> list[Figure]:
    """The bus with the event log on against off, with a trivial handler and ~100 us of work.

    Two readings of "throughput": events handled per second while the log is
    written in the background (the bus's own rate; the writer must not drop
    anything), and events per second until the log is also fully written.
    """
    figures = []
    for work, label, target, events in (
        (0.0, "trivial handler", ">= 0.7x", count * 4),  # a run lasts about as long as ...
        (100e-6, "100 us handler", ">= 0.95x", count),  # ... one with 100 us of work each
    ):
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        for _ in range(runs):  # interleaved, so drift hits both alike
            off.append(asyncio.run(_throughput(events, work, None)))
            with _namespace(db) as store:
                on.append(asyncio.run(_throughput(events, work, store)))
        figures += [
            Figure("bus", f"throughput, {label}, log on: handled", db.name, "events/s",
                   [r[0] for r in on], "log off", [r[0] for r in off], target),
            Figure("bus", f"throughput, {label}, log on: handled and logged", db.name,
                   "events/s", [r[1] for r in on], "log off", [r[1] for r in off]),
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


def _raw_save_restore_rate(db: Database, count: int) -> float:
    now = datetime.now(UTC)
    rows = [
        (e.event_id, type(e).__name__, codec.dumps(codec.encode_event(e)), e.scheduled_time, now)
        for e in _scheduled(count)
    ]
    with _namespace(db) as store:
        table = store.tables.scheduled
        with stopwatch() as elapsed:
            _raw_write(store, table, SCHEDULED_COLUMNS, rows)
            _raw_take_all(store, table)
    return count / elapsed()


def _raw_take_all(store: SQLAlchemyStore, table: Any) -> None:
    """Read every row and delete them, in one transaction, with the raw driver."""
    url = store.engine.url
    name = f'"{table.schema}"."{table.name}"' if table.schema else table.name
    take = f"DELETE FROM {name} RETURNING event_id, event_class_name, event_data, scheduled_time"
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as connection:
            connection.execute(take).fetchall()
        return
    connection = sqlite3.connect(str(url.database), isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(take).fetchall()
        connection.execute("COMMIT")
    finally:
        connection.close()


def save_restore(db: Database, *, count: int, runs: int) -> Figure:
    return Figure("event log", f"save then restore {count:,} scheduled events", db.name, "events/s",
                  [_save_restore_rate(db, count) for _ in range(runs)],
                  "raw driver: insert, then select and delete",
                  [_raw_save_restore_rate(db, count) for _ in range(runs)],
                  ">= 0.33x (within 3x)")  # fmt: skip


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
