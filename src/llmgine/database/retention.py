"""Event-log retention: an age or a row cap, applied by the writer in the background."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from llmgine.database.instants import utc_now
from llmgine.database.store import EventLog
from llmgine.errors import ConfigurationError

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, kw_only=True)
class Retention:
    """Keep the event log within ``max_age`` and ``max_rows``; checked every ``every`` seconds."""

    max_age: timedelta | None = None
    """Entries whose timestamp is older than this are purged."""
    max_rows: int | None = None
    """Only the newest this many entries are kept."""
    every: float = 60.0
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ConfigurationError(f"retention max_age must be positive, not {self.max_age}")
        if self.max_rows is not None and self.max_rows < 0:
            raise ConfigurationError(f"retention max_rows must be 0 or more, not {self.max_rows}")
        if self.every <= 0:
            raise ConfigurationError("retention must be checked every positive number of seconds")

    def apply(self, log: EventLog) -> int:
        """Purge by age, then trim to the row cap; return how many entries went."""
        removed = 0
        if self.max_age is not None:
            removed += log.purge(utc_now() - self.max_age, batch_size=self.batch_size)
        if self.max_rows is not None:
            removed += log.trim(self.max_rows, batch_size=self.batch_size)
        return removed


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"1w 2d"``... as a timedelta, else `ConfigurationError`."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise ConfigurationError(
            f"{text!r} is not a duration: use a number and a unit, s, m, h, d or w (e.g. 30d)"
        )
    return sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta(0))
