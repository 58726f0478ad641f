"""The benchmark baselines are the driver's limit: between their two clock readings runs the
driver call and nothing else, on finished rows, with the store's own settings and rows."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pytest
from benchmarks import baselines
from benchmarks.baselines import SqliteExecutemany, finish, raw_writer, store_settings

from llmgine.database.log_rows import LOG_COLUMNS, log_values
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages.events import Event

DRIVER_CODE = (str(Path(psycopg.__file__).parent), contextlib.__file__)
"""Python code that belongs to the driver call: psycopg, and the ``with`` of its ``copy``."""
DRIVER_MODULES = ("sqlite3", "psycopg", "psycopg_binary")


PROJECT_CODE = tuple(str(Path(__file__).parents[1] / d) for d in ("benchmarks", "src", "tests"))


class WatchedClock:
    """A `baselines.clock` that records what runs between its two readings besides the driver.

    A profile hook sees every call in between. A call the baseline makes must go to the
    driver: a method of a sqlite3 or psycopg object, or psycopg's Python code. What the
    driver calls in turn (the standard library, its C helpers) is the driver's work,
    unless it calls back into this project's code. Anything else, a list comprehension,
    ``datetime.isoformat``, ``len``, is work in the timed region that is not the driver's,
    and is recorded in ``foreign``.
    """

    def __init__(self) -> None:
        self.readings: list[float] = []
        self.foreign: list[str] = []
        self._origin: FrameType | None = None

    def __call__(self) -> float:
        if self.readings:
            sys.setprofile(None)
            self.readings.append(time.perf_counter())
            return self.readings[-1]
        self._origin = sys._getframe(1)
        self.readings.append(time.perf_counter())
        sys.setprofile(self._hook)
        return self.readings[-1]

    def _in_driver(self, frame: FrameType | None) -> bool:
        """Whether ``frame`` runs on behalf of the driver: it or a caller below the
        baseline's own frame is driver code."""
        while frame is not None and frame is not self._origin:
            if frame.f_code.co_filename.startswith(DRIVER_CODE):
                return True
            frame = frame.f_back
        return False

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if code is WatchedClock.__call__.__code__:
            return  # the second reading
        if event == "call":
            if code.co_filename.startswith(PROJECT_CODE) or not self._in_driver(frame):
                self.foreign.append(f"Python {code.co_qualname} ({code.co_filename})")
        elif event == "c_call" and not self._in_driver(frame):
            owner = getattr(arg, "__self__", None)
            if type(owner).__module__.split(".")[0] not in DRIVER_MODULES:
                self.foreign.append(f"C {arg.__qualname__} of {type(owner).__qualname__}")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        made = SQLAlchemyStore.from_url(url, schema=f"bench_test_{uuid.uuid4().hex[:8]}")
    else:
        made = SQLAlchemyStore.from_url(f"sqlite:///{tmp_path / 'bench.db'}", schema="bench")
    made.setup()
    yield made
    made.drop()
    made.close()


def _rows(count: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    events = [Event(session_id="s-1") for _ in range(count)]  # type: ignore[arg-type]
    return [(*log_values(e, now), now) for e in events]


def _watched(monkeypatch: pytest.MonkeyPatch) -> WatchedClock:
    clock = WatchedClock()
    monkeypatch.setattr(baselines, "clock", clock)
    return clock


def test_a_baseline_times_only_the_driver_writing_finished_rows(
    store: SQLAlchemyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = finish(store, _rows(300))
    with raw_writer(store, store.tables.log) as raw:
        clock = _watched(monkeypatch)
        seconds = raw.write(LOG_COLUMNS, rows)
    assert clock.foreign == []
    assert len(clock.readings) == 2
    assert seconds == clock.readings[1] - clock.readings[0]
    assert len(store.read()) == 300  # committed: another connection sees every row


def test_a_baseline_times_only_the_driver_taking_every_row(
    store: SQLAlchemyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with raw_writer(store, store.tables.log) as raw:
        raw.write(LOG_COLUMNS, finish(store, _rows(50)))
        clock = _watched(monkeypatch)
        seconds = raw.take_all(LOG_COLUMNS)
    assert (clock.foreign, len(clock.readings)) == ([], 2)
    assert seconds == clock.readings[1] - clock.readings[0]
    assert store.read() == []


def test_the_check_sees_other_work_inside_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class ConvertsWhileTimed(SqliteExecutemany):
        def write(self, columns: Any, rows: list[tuple[Any, ...]]) -> float:
            start = baselines.clock()
            finished = [
                tuple(v.isoformat() if isinstance(v, datetime) else v for v in r) for r in rows
            ]
            super().write(columns, finished)
            return baselines.clock() - start

    store = SQLAlchemyStore.from_url(f"sqlite:///{tmp_path / 'bench.db'}", schema="bench")
    store.setup()
    with ConvertsWhileTimed(store, store.tables.log) as raw:
        clock = _watched(monkeypatch)
        raw.write(LOG_COLUMNS, _rows(3))
    store.close()
    assert any("listcomp" in call or "genexpr" in call for call in clock.foreign), clock.foreign


def test_finished_rows_are_the_drivers_text(store: SQLAlchemyStore) -> None:
    for row in finish(store, _rows(5)):
        assert all(value is None or type(value) is str for value in row)


def test_a_baseline_writes_what_the_store_writes(store: SQLAlchemyStore, tmp_path: Path) -> None:
    events = [Event(session_id="s-1") for _ in range(20)]  # type: ignore[arg-type]
    store.append(events)
    from_store = [(e.event_id, e.event_class_name, e.data, e.timestamp) for e in store.read()]
    store.trim(0)
    now = datetime.now(UTC)
    with raw_writer(store, store.tables.log) as raw:
        raw.write(LOG_COLUMNS, finish(store, [(*log_values(e, now), now) for e in events]))
    assert [(e.event_id, e.event_class_name, e.data, e.timestamp) for e in store.read()] == (
        from_store
    )


def test_a_baseline_has_the_stores_settings(store: SQLAlchemyStore) -> None:
    with raw_writer(store, store.tables.log) as raw:
        described = raw.describe()
    assert described.startswith(store_settings(store))
    if store.engine.dialect.name == "sqlite":
        assert "journal_mode=wal, synchronous=FULL" in described
    assert "UNIQUE(event_id)" in described
    assert "(session_id) (timestamp)" in described
