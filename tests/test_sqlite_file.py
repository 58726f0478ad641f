"""A SQLite file deleted or replaced under a running store: nothing is acknowledged into a
file that no longer exists; the store says so loudly and writes to a new file."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmgine.bus.bus import MessageBus
from llmgine.database.writer import Writer
from llmgine.errors import StoreUnavailableError
from llmgine_conformance.backends import SqlBackend
from llmgine_conformance.events import ConformancePayload


def later(n: int) -> ConformancePayload:
    return ConformancePayload(scheduled_time=datetime.now(UTC) + timedelta(hours=1), value=n)


def database_file(backend: SqlBackend) -> Path:
    return Path(backend.url.removeprefix("sqlite:///"))


def test_a_commit_into_a_deleted_file_fails_and_the_next_one_recreates_it(
    sqlite_db: SqlBackend, caplog: pytest.LogCaptureFixture
) -> None:
    store = sqlite_db.open()
    try:
        store.add([later(0)])
        database_file(sqlite_db).unlink()
        with pytest.raises(StoreUnavailableError, match="deleted"):
            store.add([later(1)])
        assert "was deleted while in use" in caplog.text
        kept = later(2)
        store.add([kept])
        assert database_file(sqlite_db).exists()
    finally:
        store.close()
    reopened = sqlite_db.open()
    try:
        assert [e.event_id for e in reopened.take_all()] == [kept.event_id]
    finally:
        reopened.close()


def test_a_replaced_file_is_detected_as_well(sqlite_db: SqlBackend, tmp_path: Path) -> None:
    store = sqlite_db.open()
    try:
        store.add([later(0)])
        path = database_file(sqlite_db)
        shutil.copy(path, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", path)  # same content, another inode
        with pytest.raises(StoreUnavailableError, match="replaced"):
            store.add([later(1)])
    finally:
        store.close()


async def test_events_acknowledged_after_the_file_vanished_survive_a_restart(
    sqlite_db: SqlBackend,
) -> None:
    bus = MessageBus(store=sqlite_db.open())
    await bus.start()
    try:
        await bus.publish(later(0))
        database_file(sqlite_db).unlink()
        after = [later(n) for n in range(1, 101)]
        for event in after:
            await bus.publish(event)
    finally:
        await bus.stop()
    store = sqlite_db.open()
    try:
        restored = {e.event_id for e in store.take_all()}
    finally:
        store.close()
    assert {e.event_id for e in after} <= restored


def test_the_writer_retries_into_the_recreated_file(sqlite_db: SqlBackend) -> None:
    store = sqlite_db.open()
    writer = Writer(scheduled=store, retry_initial=0.001, retry_max=0.01)
    try:
        writer.submit_scheduled([later(0)]).result(10)
        database_file(sqlite_db).unlink()
        event = later(1)
        writer.submit_scheduled([event]).result(10)
        assert writer.stats().retried == 1
    finally:
        writer.stop(5)
        store.close()
    reopened = sqlite_db.open()
    try:
        assert [e.event_id for e in reopened.take_all()] == [event.event_id]
    finally:
        reopened.close()
