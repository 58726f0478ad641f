"""A minimal backend for the conformance suite, to copy when you plug in your own store.

    llmgine-conformance --store llmgine_conformance.example:make

The suite calls ``make(tmp_path)`` once per test, with a fresh directory, and gets a
`Backend`: a location plus what the suite may do there. `StoreFactoryBackend` needs
only a function that opens a store on the location; each hook given declares one more
capability (see ``llmgine-conformance --guide``). The store here is llmgine's own
SQLAlchemy store on a SQLite file: put yours in its place. It subclasses nothing; the
suite asks only for the methods of `llmgine.database.store`'s two protocols.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Text, insert, type_coerce

from llmgine.database.instants import to_utc, utc_now
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine_conformance.backends import StoreFactoryBackend


def open_store(path: Path, clock: Callable[[], datetime] | None = None) -> SQLAlchemyStore:
    """Your store, opened on the location: every store opened on ``path`` sees the same rows
    (RESTART), and leases are measured with ``clock`` (CLOCK)."""
    return SQLAlchemyStore.from_url(f"sqlite:///{path}", clock=clock)


def insert_raw(
    path: Path, *, event_id: str, event_class_name: str, event_data: str, due: datetime
) -> None:
    """Store a row exactly as given, bypassing the codec, as a corrupted or foreign row would
    be (RAW_ROWS): the suite checks such rows are quarantined, never lost or crashed on."""
    store = open_store(path)
    try:
        store.setup()
        row = {"event_id": event_id, "event_class_name": event_class_name,
               "event_data": type_coerce(event_data, Text()), "scheduled_time": to_utc(due),
               "created_at": utc_now()}  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(insert(store.tables.scheduled).values(**row))
    finally:
        store.close()


def make(tmp_path: Path) -> StoreFactoryBackend:
    """The factory ``--store llmgine_conformance.example:make`` names."""
    path = tmp_path / "example.db"
    return StoreFactoryBackend(
        lambda clock: open_store(path, clock),
        name="example",
        insert_raw=functools.partial(insert_raw, path),
        process_opener=functools.partial(open_store, path),  # picklable: for other processes
        environment={"LLMGINE_DB_URL": f"sqlite:///{path}", "LLMGINE_DB_SCHEMA": "message_bus"},
    )
