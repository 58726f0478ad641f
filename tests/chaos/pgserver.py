"""A throwaway PostgreSQL server: its own data directory and port, never the shared one."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(found[-1]) if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayPostgres:
    """``initdb`` into a temporary directory and ``pg_ctl`` on a free port.

    As root, the server runs as the ``postgres`` user (PostgreSQL refuses root).
    `crash` stops it the way a crash does (``-m immediate``: no checkpoint,
    connections cut), `start` brings it back on the same port.
    """

    def __init__(self, *, max_connections: int = 100) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self._bin = bin_dir
        self.max_connections = max_connections
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="llmgine-chaos-pg-"))
        self._data = self._dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self._dir)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections}"
        )
        self._run("pg_ctl", "-D", str(self._data), "-l", str(self._dir / "log"), "-o", options,
                  "-w", "start")  # fmt: skip

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")

    def restart(self, down_s: float) -> None:
        """Crash the server, keep it down ``down_s`` seconds, start it again."""
        self.crash()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.crash()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
