"""The factory the conformance suite calls, ``example_backend.backend:make``.

    llmgine-conformance --store example_backend.backend:make

`make` is called once per test with a fresh directory and returns a `Backend`:
the location stores are opened on (here, one JSON file) and what else can be
done there. The capabilities it declares are promises the suite then checks;
tests needing one it does not declare are skipped, and the run says so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from example_backend.filestore import FileStore
from llmgine.database.instants import utc_now
from llmgine_conformance.backends import (
    CLOCK,
    EVENT_LOG,
    PROCESSES,
    RAW_ROWS,
    RESTART,
    Backend,
    Clock,
)


class FileBackend(Backend):
    """`FileStore` objects on one JSON file."""

    name = "file"
    capabilities = frozenset(
        {
            RESTART,  # a store opened on the same file sees what earlier ones stored
            CLOCK,  # FileStore measures leases with the clock it is given
            RAW_ROWS,  # insert_raw plants rows the codec would never write
            EVENT_LOG,  # FileStore is an EventLog too
            PROCESSES,  # the file lock works across processes, and process_opener pickles
        }
    )

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, *, clock: Clock | None = None) -> FileStore:
        return FileStore(self.path, clock=clock or utc_now)

    def insert_raw(
        self, *, event_id: str, event_class_name: str, event_data: str, due: datetime
    ) -> None:
        FileStore(self.path).insert_raw(
            event_id=event_id, event_class_name=event_class_name, event_data=event_data, due=due
        )

    def process_opener(self) -> Callable[[], FileStore]:
        return functools.partial(FileStore, self.path)


def make(tmp_path: Path) -> FileBackend:
    """A backend on a file of its own in ``tmp_path`` (pytest removes the directory)."""
    return FileBackend(tmp_path / "events.json")
