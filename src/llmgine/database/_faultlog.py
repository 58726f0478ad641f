"""One log line per fault, not one per failed call: repeats are counted and summarised."""

from __future__ import annotations

import logging
import threading
import time

from llmgine.redaction import redact


class FaultLog:
    """Logs a fault, then at most one line per ``interval`` for the same kind of fault."""

    def __init__(self, logger: logging.Logger, *, interval: float = 30.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def report(self, kind: str, message: str, *args: object, level: int = logging.WARNING) -> None:
        """Log ``message % args`` unless ``kind`` was logged within the interval.

        Text and exception arguments are logged with passwords hidden."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(kind, (float("-inf"), 0))
            if now - last < self._interval:
                self._last[kind] = (last, suppressed + 1)
                return
            self._last[kind] = (now, 0)
        args = tuple(redact(a) if isinstance(a, str | BaseException) else a for a in args)
        if suppressed:
            message += " (%d similar faults since the last report)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args)

    def clear(self) -> None:
        """Forget every kind: the next fault of each is logged at once."""
        with self._lock:
            self._last.clear()

    def reset(self, kind: str) -> None:
        """Forget ``kind``, so its next fault is logged at once (call on recovery)."""
        with self._lock:
            self._last.pop(kind, None)
