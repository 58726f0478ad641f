"""A PostgreSQL server of a test's own: initdb and pg_ctl in a temporary directory, on a free
port, with password (SCRAM) authentication over TCP. Never the shared server.

PostgreSQL refuses to run as root, so the server runs as the ``postgres`` user when the
tests run as root. `why_unavailable` says why one cannot be started here.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def throwaway_postgres() -> Iterator[tuple[int, str]]:
    """Start a server; yields (port, password of user ``postgres``); stops and removes it."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(why_unavailable())
    directory = Path(tempfile.mkdtemp(prefix="llmgine-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, pwfile, port = directory / "data", directory / "pw", free_port()
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        _run(initdb, "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8")  # fmt: skip
        options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(pg_ctl, "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start")
        try:
            yield port, PASSWORD
        finally:
            _run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
