"""How to write event-log rows: each way SQLAlchemy offers, against the raw driver.

All variants write the same prepared rows (payload already JSON text) into
the same table, one transaction per variant, so only the insert path differs.
The raw driver (sqlite3 ``executemany``; psycopg ``COPY``; see `benchmarks.baselines`)
writing the same rows, finished before its clock starts, is the physical limit.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, insert, literal_column, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from benchmarks.baselines import finish, raw_writer
from benchmarks.harness import Database, Figure, stopwatch
from llmgine.database import codec
from llmgine.database._driver_rows import DriverInsert, driver_instant
from llmgine.database.config import normalize_url
from llmgine.database.connect import create_engine_for
from llmgine.database.models import EventRecord, Naming
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.messages.events import Event

COLUMNS = ("event_id", "event_class_name", "event_data", "session_id", "timestamp", "created_at")


def sample_rows(count: int) -> list[tuple[Any, ...]]:
    """Event-log rows as the store builds them: ids, class, JSON text, session, instants."""
    now = datetime.now(UTC)
    rows = []
    for _ in range(count):
        event = Event(session_id="s-1")  # type: ignore[arg-type]
        data = codec.dumps(codec.encode_event(event, strict=False))
        rows.append((str(uuid.uuid4()), "Event", data, "s-1", now, now))
    return rows


def _fresh(db: Database, tag: str) -> SQLAlchemyStore:
    """A store with an unprefixed `event_log` table (so the ORM model maps to it)."""
    if db.name == "postgres":
        store = SQLAlchemyStore.from_url(db.url, schema=f"{db.schema}_{tag}")
    else:
        engine = create_engine_for(normalize_url(db.url.replace(".db", f"_{tag}.db")))
        store = SQLAlchemyStore(engine, naming=Naming())
    store.setup()
    return store


def _orm_bulk(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    if table.schema:  # the model's table has no schema: map it to this store's
        engine = engine.execution_options(schema_translate_map={None: table.schema})
    with Session(engine) as session, session.begin():
        session.execute(insert(EventRecord), [dict(zip(COLUMNS, r, strict=True)) for r in rows])


def _core(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(table), [dict(zip(COLUMNS, r, strict=True)) for r in rows])


def _driver(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    instant = driver_instant(engine.dialect)
    assert instant is not None
    fast = DriverInsert(insert(table), COLUMNS, engine.dialect)
    prepared = [(*r[:4], instant(r[4]), instant(r[5])) for r in rows]
    with engine.begin() as conn:
        fast.execute(conn, prepared)


def _copy(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    with engine.begin() as conn:
        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {name} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _copy_via_temp(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    """COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING."""
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    cols = ", ".join(COLUMNS)
    with engine.begin() as conn:
        cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS llmgine_incoming (event_id text, "
            "event_class_name text, event_data json, session_id text, timestamp timestamptz, "
            "created_at timestamptz) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY llmgine_incoming ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {name} ({cols}) SELECT {cols} FROM llmgine_incoming "
            "ON CONFLICT (event_id) DO NOTHING"
        )


def _unnest(engine: Engine, table: Any, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING per batch."""
    columns = list(zip(*rows, strict=True))
    types = ["text", "text", "json", "text", "timestamptz", "timestamptz"]
    arrays = ", ".join(f"CAST(:c{i} AS {t}[])" for i, t in enumerate(types))
    source = select(literal_column("*")).select_from(text(f"unnest({arrays})"))
    stmt = postgresql.insert(table).from_select(list(COLUMNS), source).on_conflict_do_nothing()
    with engine.begin() as conn:
        conn.execute(stmt, {f"c{i}": list(column) for i, column in enumerate(columns)})


def raw_driver_runs(
    db: Database, rows: list[tuple[Any, ...]], runs: int
) -> tuple[list[float], str]:
    """Rows/s for the raw driver (sqlite3 executemany, or psycopg COPY, one transaction) on
    ``rows`` finished before the clock, and the baseline's setup."""
    rates, setup = [], ""
    for _ in range(runs):
        store = _fresh(db, f"raw{uuid.uuid4().hex[:6]}")
        try:
            with raw_writer(store, store.tables.log) as raw:
                finished = finish(store, rows)
                rates.append(len(rows) / raw.write(COLUMNS, finished))
                setup = f"{raw.driver}: {raw.describe()}"
        finally:
            store.drop()
            store.close()
    return rates, setup


def measure(db: Database, *, count: int, runs: int) -> list[Figure]:
    rows = sample_rows(count)
    variants: dict[str, Any] = {
        "ORM bulk insert": lambda s: _orm_bulk(s.engine, s.tables.log, rows),
        "Core executemany": lambda s: _core(s.engine, s.tables.log, rows),
        "driver executemany via SQLAlchemy": lambda s: _driver(s.engine, s.tables.log, rows),
    }
    if db.name == "postgres":
        variants["COPY via SQLAlchemy's connection"] = lambda s: _copy(s.engine, s.tables.log, rows)
        variants["COPY to a temp table, INSERT ON CONFLICT"] = lambda s: _copy_via_temp(
            s.engine, s.tables.log, rows
        )
        variants["INSERT ... unnest(arrays) ON CONFLICT"] = lambda s: _unnest(
            s.engine, s.tables.log, rows
        )
    raw, setup = raw_driver_runs(db, rows, runs)
    baseline = "psycopg COPY" if db.name == "postgres" else "sqlite3 executemany"
    figures = []
    for name, write in variants.items():
        rates = []
        for _ in range(runs):
            store = _fresh(db, uuid.uuid4().hex[:6])
            with stopwatch() as elapsed:
                write(store)
            rates.append(count / elapsed())
            store.drop()
            store.close()
        figures.append(
            Figure(
                "insert method",
                name,
                db.name,
                "rows/s",
                rates,
                f"raw {baseline}",
                raw,
                baseline_setup=setup,
            )
        )
    return figures


def json_encoders(*, count: int, runs: int) -> Figure:
    """Serialising encoded event payloads: orjson against the standard library."""
    payloads = [codec.encode_event(Event(), strict=False) for _ in range(count)]

    def rate(dumps: Any) -> float:
        with stopwatch() as elapsed:
            for payload in payloads:
                dumps(payload)
        return count / elapsed()

    return Figure(
        "insert method",
        "JSON payloads with orjson",
        "-",
        "payloads/s",
        [rate(orjson.dumps) for _ in range(runs)],
        "stdlib json.dumps",
        [rate(lambda p: json.dumps(p, separators=(",", ":"))) for _ in range(runs)],
    )
