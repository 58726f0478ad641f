"""Stores that loop or hang, for the suite's bounds: each must fail its test, not stop the run.

Usable as ``--llmgine-store stuck_stores:<factory>`` with ``tests/`` importable.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from llmgine.database.instants import utc_now
from llmgine.database.memory import MemoryStore
from llmgine.database.store import LogEntry
from llmgine.messages.scheduled_events import ScheduledEvent
from llmgine_conformance.backends import Backend, Clock, MemoryBackend

HUNG_MARKER = "store-call-hung"
"""Created in the working directory when a hanging store call starts (the test sees it)."""


class _MemoryBackendOf(MemoryBackend):
    def __init__(self, store_class: type[MemoryStore]) -> None:
        super().__init__()
        self.store_class = store_class
        self.name = store_class.__name__

    def open(self, *, clock: Clock | None = None) -> MemoryStore:
        return self.store_class(self.database, clock=clock or utc_now)


class IgnoresAfterId(MemoryStore):
    """``read`` ignores ``after_id``: a paging loop never runs dry."""

    def read(self, *, after_id: int | None = None, **filters: object) -> list[LogEntry]:
        return super().read(**filters)  # type: ignore[arg-type]


class ClaimsForever(MemoryStore):
    """``claim`` hands out events and lets them go at once: claiming never runs dry."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        claimed = super().claim(owner, due_before=due_before, lease=lease, limit=limit)
        self.release(owner)
        return claimed


class HangsOnClaim(MemoryStore):
    """``claim`` never returns."""

    def claim(
        self, owner: str, *, due_before: datetime, lease: timedelta, limit: int
    ) -> list[ScheduledEvent]:
        Path(HUNG_MARKER).touch()
        threading.Event().wait()
        return []


def ignores_after_id(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(IgnoresAfterId)


def claims_forever(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(ClaimsForever)


def hangs_on_claim(tmp_path: Path) -> Backend:
    return _MemoryBackendOf(HangsOnClaim)


__all__: Sequence[str] = ("claims_forever", "hangs_on_claim", "ignores_after_id")
