"""Buses in processes of their own (see `_bus_worker`): start, kill, read what they did."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmgine_conformance.backends import Backend

STARTUP_TIMEOUT_S = 60.0


def write_opener(backend: Backend, directory: Path) -> Path:
    """Pickle ``backend.process_opener()`` into ``directory``; return the file for the workers."""
    path = directory / "opener.pickle"
    with path.open("wb") as file:
        pickle.dump(backend.process_opener(), file)
    return path


class BusProcess:
    """One worker process and everything it has reported so far."""

    def __init__(
        self, opener: Path, name: str, env: dict[str, str] | None = None, /, **options: float
    ) -> None:
        """Start the worker; ``env`` adds to this process's environment."""
        self.name = name
        command = [sys.executable, "-m", "llmgine_conformance._bus_worker", str(opener), name]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lock = threading.Lock()
        self._reports: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            report = json.loads(line)
            report["received"] = time.time()  # this process's clock, whatever the worker's
            with self._lock:
                self._reports.append(report)

    def reports(self, key: str) -> list[dict[str, Any]]:
        """Every report holding ``key``, in order, each with its ``received`` time."""
        with self._lock:
            return [report for report in self._reports if key in report]

    def _values(self, key: str) -> list[str]:
        with self._lock:
            return [report[key] for report in self._reports if key in report]

    @property
    def acks(self) -> set[str]:
        """Ids whose publish() returned in this process."""
        return set(self._values("ack"))

    @property
    def deliveries(self) -> list[str]:
        """Ids delivered to a handler in this process, in order, repeats included."""
        return self._values("delivered")

    @property
    def started(self) -> bool:
        return bool(self._values("started"))

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` passes; False if it never held."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or self._process.poll() is not None:
                return condition()
            time.sleep(0.02)
        return True

    def wait_started(self) -> None:
        if not self.wait_until(lambda: self.started, STARTUP_TIMEOUT_S):
            raise RuntimeError(
                f"bus process {self.name} did not start (exit {self._process.poll()})"
            )

    def signal(self, number: int) -> None:
        """Send a signal (SIGSTOP freezes the whole process; SIGCONT resumes it)."""
        self._process.send_signal(number)

    def kill(self) -> None:
        """SIGKILL: no stop(), no flush, no release."""
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._reader.join(5)

    def stop(self, timeout: float = 30.0) -> int:
        """Ask the bus to stop cleanly; return the exit status."""
        assert self._process.stdin is not None
        self._process.stdin.write("stop\n")
        self._process.stdin.close()
        status = self._process.wait(timeout)
        self._reader.join(5)
        return status

    def close(self) -> None:
        """Make sure the process is gone (after a failed test)."""
        if self._process.poll() is None:
            self.kill()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def delivery_counts(processes: list[BusProcess]) -> Counter[str]:
    """How many times each id was delivered, across ``processes``."""
    return Counter(event_id for process in processes for event_id in process.deliveries)
