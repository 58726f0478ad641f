"""Fixtures shared by this repository's tests: isolated environment, backends, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmgine.database import reset_engine
from llmgine_conformance.backends import (
    Backend,
    MemoryBackend,
    PostgresBackend,
    SqlBackend,
    postgres_required,
    postgres_url_from_environment,
    sqlite_backend,
)

ENV_NAMES = ("LLMGINE_DB_URL", "LLMGINE_DB_SCHEMA", "LLMGINE_PERSIST_EVENTS")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test points the seed API at a fresh SQLite file, never at ./message_bus.db."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMGINE_DB_URL", f"sqlite:///{tmp_path / 'default.db'}")
    reset_engine()
    yield
    reset_engine()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = postgres_url_from_environment()
    if url is None:
        reason = "no PostgreSQL: set LLMGINE_TEST_POSTGRES_URL"
        if postgres_required():
            pytest.fail(f"{reason} (LLMGINE_REQUIRE_POSTGRES=1 forbids skipping)")
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_backend(postgres_url: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(postgres_url)
    yield backend
    leaked = backend.leaked_connections()
    backend.close()
    assert leaked == 0, f"{leaked} pooled connections still checked out"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[SqlBackend]:
    backend = sqlite_backend(tmp_path)
    yield backend
    leaked = backend.leaked_connections()
    backend.close()
    assert leaked == 0, f"{leaked} pooled connections still checked out"


@pytest.fixture(params=["sqlite", "postgres"])
def sql_backend(request: pytest.FixtureRequest) -> SqlBackend:
    """Each SQL backend in turn."""
    name = "sqlite_db" if request.param == "sqlite" else "postgres_backend"
    backend: SqlBackend = request.getfixturevalue(name)
    return backend


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every built-in backend in turn."""
    if request.param == "memory":
        return MemoryBackend()
    name = "sqlite_db" if request.param == "sqlite" else "postgres_backend"
    found: Backend = request.getfixturevalue(name)
    return found


@pytest.fixture
def use_backend(monkeypatch: pytest.MonkeyPatch) -> object:
    """Point the environment-driven seed API at a SQL backend: ``use_backend(backend)``."""

    def point(backend: SqlBackend) -> None:
        for name, value in backend.environment().items():
            monkeypatch.setenv(name, value)

    return point
