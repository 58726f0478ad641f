"""Finding a PostgreSQL server for the suite: an explicit URL, else testcontainers, else a reason.

Order: ``--llmgine-postgres-url`` or ``LLMGINE_TEST_POSTGRES_URL``; then a
container started with testcontainers when a Docker engine answers; else no
server, with a reason that says what to set. The caller turns "no server"
into a skip, or into a failure when ``LLMGINE_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

POSTGRES_IMAGE = "postgres:16-alpine"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


@dataclass
class PostgresServer:
    """Where PostgreSQL is, how it was found, and how to let it go."""

    url: str | None
    source: str
    """"explicit URL", "testcontainers", or why there is none."""
    stop: Callable[[], None] = field(default=lambda: None)


def docker_available(environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether a Docker engine answers ``GET /_ping`` at ``DOCKER_HOST``, and if not, why.

    A small probe of its own: docker-py leaves a socket open when the engine is absent.
    """
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    parsed = urlsplit(host)
    try:
        if parsed.scheme == "unix":
            sock: socket.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = parsed.path
        elif parsed.scheme in ("tcp", "http"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (parsed.hostname or "localhost", parsed.port or 2375)
        else:
            return False, f"DOCKER_HOST={host!r} is not a unix:// or tcp:// address"
        with sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(256)
    except OSError as exc:
        return False, f"no Docker engine answers at {host} ({type(exc).__name__}: {exc})"
    if b" 200 " not in reply.split(b"\r\n", 1)[0]:
        return False, f"the Docker engine at {host} did not answer the ping"
    return True, f"a Docker engine answers at {host}"


def start_container(image: str = POSTGRES_IMAGE) -> PostgresServer:
    """Start PostgreSQL in a container (testcontainers); its URL uses psycopg 3."""
    from testcontainers.postgres import PostgresContainer

    container: Any = PostgresContainer(image, driver="psycopg")
    container.start()
    return PostgresServer(container.get_connection_url(), "testcontainers", container.stop)


def find_postgres(
    explicit: str | None,
    *,
    docker: Callable[[], tuple[bool, str]] = docker_available,
    start: Callable[[], PostgresServer] = start_container,
) -> PostgresServer:
    """The PostgreSQL server the suite should use (see the module docstring for the order)."""
    if explicit:
        return PostgresServer(explicit, "explicit URL")
    answers, why = docker()
    if answers and start is start_container and importlib.util.find_spec("testcontainers") is None:
        return PostgresServer(
            None,
            "no PostgreSQL: a Docker engine answers but testcontainers is not installed: "
            "pip install 'llmgine[containers]', or set LLMGINE_TEST_POSTGRES_URL "
            "(or --llmgine-postgres-url)",
        )
    if answers:
        return start()
    return PostgresServer(
        None,
        "no PostgreSQL: set LLMGINE_TEST_POSTGRES_URL (or --llmgine-postgres-url), "
        f"or run a Docker engine for testcontainers; {why}",
    )
