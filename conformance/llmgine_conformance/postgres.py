"""Finding a PostgreSQL server for the suite: an explicit URL, else testcontainers, else a reason.

Order: ``--llmgine-postgres-url`` or ``LLMGINE_TEST_POSTGRES_URL``; then a
container started with testcontainers when a Docker engine answers; else no
server, with a reason that says what to set. The caller turns "no server"
into a skip, or into a failure when ``LLMGINE_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

POSTGRES_IMAGE = "postgres:16-alpine"


@dataclass
class PostgresServer:
    """Where PostgreSQL is, how it was found, and how to let it go."""

    url: str | None
    source: str
    """"explicit URL", "testcontainers", or why there is none."""
    stop: Callable[[], None] = field(default=lambda: None)


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers a ping, and if not, why."""
    try:
        import docker
    except ImportError as exc:
        return False, f"the docker package is not installed ({exc})"
    try:
        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return False, f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:120]})"
    return True, "a Docker engine answers"


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
    if answers:
        return start()
    return PostgresServer(
        None,
        "no PostgreSQL: set LLMGINE_TEST_POSTGRES_URL (or --llmgine-postgres-url), "
        f"or run a Docker engine for testcontainers; {why}",
    )
