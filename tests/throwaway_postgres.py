"""A PostgreSQL server of a test's own: initdb and pg_ctl in a temporary directory, on a free
port. Never the shared server: tests that crash, restart or reconfigure PostgreSQL use this.

PostgreSQL refuses to run as root, so the server runs as the ``postgres`` user when the
tests run as root. `why_unavailable` says why one cannot be started here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PASSWORD = "throwaway-secret"


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    return found[-1] or None


def why_unavailable() -> str | None:
    """None when a throwaway server can be started; else the reason."""
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return "initdb/pg_ctl not found (install PostgreSQL's server binaries)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as another user"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


class ThrowawayPostgres:
    """A server in a temporary directory on a free port; `start`, `crash`, `restart`, `close`.

    With ``password``, TCP connections need it (SCRAM); without, they are trusted.
    `crash` stops the server the way a crash does (``-m immediate``: no checkpoint,
    connections cut); `start` brings it back on the same port.
    """

    def __init__(self, *, max_connections: int = 100, password: str | None = None) -> None:
        reason = why_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.port = free_port()
        self.password = password
        self.max_connections = max_connections
        self._dir = Path(tempfile.mkdtemp(prefix="llmgine-pg-"))
        self._data = self._dir / "data"
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = self._dir / "pw"
            pwfile.write_text(password)
            auth = ["--pwfile", str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust"]
        if os.geteuid() == 0:
            for path in self._dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
            shutil.chown(self._dir, "postgres", "postgres")
        _run(str(_bin("initdb")), "-D", str(self._data), "-U", "postgres", *auth, "-E", "UTF8")

    @property
    def url(self) -> str:
        """A URL for user ``postgres`` on database ``postgres`` (password included, if any)."""
        secret = "" if self.password is None else f":{self.password}"
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections}"
        )
        _run(str(_bin("pg_ctl")), "-D", str(self._data), "-o", options,
             "-l", str(self._dir / "log"), "-w", "start")  # fmt: skip

    def crash(self) -> None:
        _run(str(_bin("pg_ctl")), "-D", str(self._data), "-m", "immediate", "-w", "stop")

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


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[tuple[int, str]]:
    """A password-protected server; yields (port, password of user ``postgres``)."""
    with ThrowawayPostgres(password=PASSWORD) as server:
        yield server.port, PASSWORD
