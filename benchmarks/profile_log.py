"""Where an event-log entry's time goes: each stage of the writer's path timed alone.

``python -m benchmarks.profile_log [--backend sqlite|postgres] [--count N] [--runs R]``
prints microseconds per event for each stage, single-threaded and in the order
the writer runs them, beside the raw driver writing the same finished rows and
the whole path (`persist_event` until `flush` returned). Medians of the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.baselines import finish, raw_writer
from benchmarks.eventlog import _environment, _events, _log_rows, _schema_of
from benchmarks.harness import database
from llmgine.database import DatabaseEngine, persist_event
from llmgine.database._driver_rows import CopyInsert, JsonArrayInsert, copy_text
from llmgine.database.log_json import log_json
from llmgine.database.log_rows import LOG_COLUMNS
from llmgine.database.sqlstore import SQLAlchemyStore


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _fresh(url: str, schema: str) -> SQLAlchemyStore:
    store = SQLAlchemyStore.from_url(url, schema=f"{schema}_{uuid.uuid4().hex[:6]}")
    store.setup()
    return store


def _stages(url: str, schema: str, count: int, batch: int) -> dict[str, float]:
    """Seconds per stage for ``count`` events, written ``batch`` at a time."""
    events = _events(count)
    now = datetime.now(UTC)
    out: dict[str, float] = {}
    store = _fresh(url, schema)
    try:
        out["Event() construction (the caller's, for scale)"] = _seconds(lambda: _events(count))
        out["log_json: orjson of the dataclass"] = _seconds(lambda: [log_json(e) for e in events])
        rows_of = store._log_rows  # the writer's row builder
        assert rows_of is not None
        parts = [events[i : i + batch] for i in range(0, count, batch)]
        built: list[list[tuple[Any, ...]]] = []
        out["row building (DriverLogRows.rows, incl. log_json)"] = _seconds(
            lambda: built.extend(list(rows_of.rows(p, now)) for p in parts)
        )
        insert = store._log_insert
        with raw_writer(store, store.tables.log) as raw:
            raw_rows = finish(store, _log_rows(events))
            out["raw driver, finished rows (the baseline)"] = raw.write(LOG_COLUMNS, raw_rows)
        store.trim(0)
        if isinstance(insert, JsonArrayInsert):
            arrays: list[str | None] = []
            out["JSON array of the batch (orjson + NUL check)"] = _seconds(
                lambda: arrays.extend(JsonArrayInsert._array(rows) for rows in built)
            )

            def execute() -> None:
                for array in arrays:
                    with store.engine.begin() as conn:
                        conn.exec_driver_sql(insert.sql, (array,))

            out["SQLite: INSERT ... json_each, COMMIT per batch"] = _seconds(execute)
        elif isinstance(insert, CopyInsert):
            texts: list[str] = []
            out["COPY text of the batch (copy_text)"] = _seconds(
                lambda: texts.extend(copy_text(rows) for rows in built)
            )

            def copy() -> None:
                for text in texts:
                    with store.engine.begin() as conn, conn.begin_nested():
                        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                        with cursor.copy(insert.sql) as stream:
                            stream.write(text)

            out["PostgreSQL: COPY in a savepoint, COMMIT per batch"] = _seconds(copy)
        store.trim(0)

        def append() -> None:
            for part in parts:
                store.append(part)

        out["store.append per batch (all of the above)"] = _seconds(append)
    finally:
        store.drop()
        store.close()
    return out


def _whole_path(url: str, schema: str, count: int) -> dict[str, float]:
    """Seconds from the first `persist_event` until the last returned, and until `flush`
    returned (as the harness times it), with the writer thread's CPU time."""
    events = _events(count)
    store = _fresh(url, schema)
    try:
        db = type("Db", (), {"url": url})()
        with _environment(db, _schema_of(store), persist=True):  # type: ignore[arg-type]
            DatabaseEngine.get_store().setup()
            start, cpu = time.perf_counter(), time.process_time()
            for event in events:
                persist_event(event)
            queued = time.perf_counter() - start
            assert DatabaseEngine.flush(120)
            return {
                "whole path: persist_event calls (caller thread, beside the writer)": queued,
                "whole path: persist_event until flush returned": time.perf_counter() - start,
                "whole path: CPU of the process (both threads)": time.process_time() - cpu,
            }
    finally:
        store.drop()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_log", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000, help="the writer's max_batch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres-url", default=os.environ.get("LLMGINE_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="llmgine-profile-") as directory,
        database(args.backend, Path(directory), args.postgres_url) as db,
    ):
        for _ in range(args.runs):
            for stage, seconds in _stages(db.url, db.schema, args.count, args.batch).items():
                results.setdefault(stage, []).append(seconds)
            for stage, seconds in _whole_path(db.url, db.schema, args.count).items():
                results.setdefault(stage, []).append(seconds)
    print(f"{args.backend}, {args.count:,} events, batches of {args.batch:,}, "
          f"median of {args.runs} runs, us per event:")  # fmt: skip
    width = max(map(len, results))
    for stage, runs in results.items():
        print(f"  {stage.ljust(width)}  {statistics.median(runs) / args.count * 1e6:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
