"""Fixtures of this repository's own tests. The conformance plugin (enabled in pyproject.toml)
provides ``backend`` and ``store`` over every built-in backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmgine.database import reset_engine
from llmgine_conformance.backends import SqlBackend, postgres_backend, sqlite_backend
from llmgine_conformance.postgres import PostgresServer

ENV_NAMES = (
    "LLMGINE_DB_URL",
    "LLMGINE_DB_SCHEMA",
    "LLMGINE_PERSIST_EVENTS",
    "LLMGINE_DB_POOL_SIZE",
    "LLMGINE_DB_MAX_OVERFLOW",
    "LLMGINE_DB_POOL_TIMEOUT",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test points the seed API at a fresh SQLite file, never at ./message_bus.db."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{tmp_path / 'default.db'}")
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def postgres_url(llmgine_postgres: PostgresServer) -> str:
    """The session's PostgreSQL URL; skips without one (fails if LLMGINE_REQUIRE_POSTGRES=1)."""
    from llmgine_conformance.plugin import require_postgres_url

    return require_postgres_url(llmgine_postgres)


def _checked(backend: SqlBackend) -> Iterator[SqlBackend]:
    yield backend
    leaked = backend.leaked_connections()
    backend.close()
    assert leaked == 0, f"{leaked} pooled connections still checked out"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqlBackend]:
    yield from _checked(sqlite_backend(tmp_path))


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[SqlBackend]:
    yield from _checked(postgres_backend(postgres_url))


@pytest.fixture(params=["sqlite", "postgres"])
def sql_backend(request: pytest.FixtureRequest) -> SqlBackend:
    """Each SQL backend in turn."""
    name = "sqlite_db" if request.param == "sqlite" else "postgres_db"
    backend: SqlBackend = request.getfixturevalue(name)
    return backend


@pytest.fixture
def use_backend(monkeypatch: pytest.MonkeyPatch) -> Callable[[SqlBackend], None]:
    """Point the environment-driven seed API at a SQL backend: ``use_backend(backend)``."""

    def point(backend: SqlBackend) -> None:
        for name, value in backend.environment().items():
            monkeypatch.setenv(name, value)

    return point
