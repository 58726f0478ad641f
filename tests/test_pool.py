"""Connection pools: small by default (a bus needs a few connections), set by the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from llmgine.database import DatabaseEngine
from llmgine.database.config import DatabaseConfig, PoolSettings, parse_pool
from llmgine.database.connect import create_engine_for
from llmgine.errors import ConfigurationError


def test_the_default_pool_is_small() -> None:
    assert DatabaseConfig(environ={}).pool == PoolSettings(size=2, max_overflow=3, timeout=10.0)


def test_the_environment_sets_the_pool() -> None:
    config = DatabaseConfig(
        environ={
            "LLMGINE_DB_POOL_SIZE": "4",
            "LLMGINE_DB_MAX_OVERFLOW": "0",
            "LLMGINE_DB_POOL_TIMEOUT": "2.5",
        }
    )
    assert config.pool == PoolSettings(size=4, max_overflow=0, timeout=2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLMGINE_DB_POOL_SIZE", "two"),
        ("LLMGINE_DB_POOL_SIZE", "-1"),
        ("LLMGINE_DB_MAX_OVERFLOW", "1.5"),
        ("LLMGINE_DB_POOL_TIMEOUT", "0"),
        ("LLMGINE_DB_POOL_TIMEOUT", "soon"),
        ("LLMGINE_DB_POOL_TIMEOUT", "inf"),
    ],
)
def test_a_bad_pool_value_is_an_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        DatabaseConfig(environ={name: value})


def test_pool_settings_are_part_of_the_configuration() -> None:
    base = DatabaseConfig(db_url="sqlite://", schema="a", persist_events=False)
    bigger = DatabaseConfig(
        db_url="sqlite://", schema="a", persist_events=False, pool=PoolSettings(size=5)
    )
    assert base.has_changed(bigger)
    assert base != bigger
    assert base == DatabaseConfig(
        db_url="sqlite://", schema="a", persist_events=False, pool=PoolSettings()
    )


def test_engines_get_the_configured_pool(tmp_path: Path) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'x.db'}")
    engine = create_engine_for(url, pool=parse_pool("3", "1", "4"))
    try:
        assert isinstance(engine.pool, QueuePool)
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (3, 1, 4)
    finally:
        engine.dispose()


def test_pool_size_zero_keeps_no_connection_open(tmp_path: Path) -> None:
    engine = create_engine_for(make_url(f"sqlite:///{tmp_path / 'x.db'}"), pool=PoolSettings(0))
    assert isinstance(engine.pool, NullPool)
    engine.dispose()


def test_in_memory_sqlite_keeps_its_one_shared_connection() -> None:
    engine = create_engine_for(make_url("sqlite://"), pool=PoolSettings(size=0))
    assert isinstance(engine.pool, StaticPool)
    engine.dispose()


def test_the_environment_engine_uses_the_environment_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_POOL_SIZE", "1")
    monkeypatch.setenv("LLMGINE_DB_MAX_OVERFLOW", "0")
    first = DatabaseEngine.get_engine()
    assert isinstance(first.pool, QueuePool)
    assert (first.pool.size(), first.pool._max_overflow) == (1, 0)
    monkeypatch.setenv("LLMGINE_DB_POOL_SIZE", "2")
    second = DatabaseEngine.get_engine()  # a change of pool settings is a change of engine
    assert second is not first
    assert second.pool.size() == 2  # type: ignore[attr-defined]
