"""DatabaseConfig: environment, defaults, validation, naming, redaction."""

from __future__ import annotations

import pytest

from llmgine.database.config import DEFAULT_SCHEMA, DEFAULT_URL, DatabaseConfig, redact
from llmgine.database.models import Naming
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.errors import ConfigurationError


def test_defaults_are_the_original_modules() -> None:
    config = DatabaseConfig(environ={})
    assert (config.db_url, config.schema, config.persist_events) == (
        DEFAULT_URL,
        DEFAULT_SCHEMA,
        False,
    )
    assert config.db_url == "sqlite:///./message_bus.db"
    assert config.schema == "message_bus"
    assert not config.is_postgres


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", "postgresql://u:p@db/prod")
    monkeypatch.setenv("LLMGINE_DB_SCHEMA", "llmgine_production")
    monkeypatch.setenv("LLMGINE_PERSIST_EVENTS", "1")
    config = DatabaseConfig()
    assert config.is_postgres
    assert config.schema == "llmgine_production"
    assert config.persist_events


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("yes", True), ("On", True), (" TRUE ", True),
     ("0", False), ("", False), ("off", False), ("False", False), ("NO", False)],
)  # fmt: skip
def test_persist_flag_values(raw: str, expected: bool) -> None:
    config = DatabaseConfig(environ={"LLMGINE_PERSIST_EVENTS": raw})
    assert config.persist_events is expected
    assert config.ignored == ()


@pytest.mark.parametrize("raw", ["maybe", "enabled", "2", "y"])
def test_an_unknown_persist_flag_is_ignored_saying_so(raw: str) -> None:
    config = DatabaseConfig(environ={"LLMGINE_PERSIST_EVENTS": raw})
    assert config.persist_events is False
    assert config.ignored == (
        f"LLMGINE_PERSIST_EVENTS={raw!r} is not one of 1/0/true/false/yes/no/on/off: "
        "ignored, the event log is off",
    )


@pytest.mark.parametrize("url", ["postgresql://h/db", "postgres://h/db"])
def test_plain_postgres_urls_use_psycopg3(url: str) -> None:
    config = DatabaseConfig(db_url=url, schema="s", persist_events=False)
    assert config.url.drivername == "postgresql+psycopg"
    assert config.is_postgres


def test_explicit_arguments_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_SCHEMA", "from_env")
    config = DatabaseConfig(db_url="sqlite://", schema="given", persist_events=True)
    assert config.schema == "given"


def test_has_changed_compares_url_schema_and_flag() -> None:
    base = DatabaseConfig(db_url="sqlite://", schema="a", persist_events=False)
    assert not base.has_changed(
        DatabaseConfig(db_url="sqlite://", schema="a", persist_events=False)
    )
    assert base.has_changed(
        DatabaseConfig(db_url="sqlite:///x.db", schema="a", persist_events=False)
    )
    assert base.has_changed(DatabaseConfig(db_url="sqlite://", schema="b", persist_events=False))
    assert base.has_changed(DatabaseConfig(db_url="sqlite://", schema="a", persist_events=True))


@pytest.mark.parametrize(
    ("schema", "naming"),
    [
        ("message_bus", Naming(prefix="message_bus_")),
        ("a.b", Naming(prefix="a_b_")),
        ("", Naming()),
    ],
)
def test_sqlite_schema_becomes_a_table_prefix(schema: str, naming: Naming) -> None:
    assert DatabaseConfig(db_url="sqlite://", schema=schema, persist_events=False).naming == naming


def test_postgres_schema_is_a_real_schema() -> None:
    config = DatabaseConfig(db_url="postgresql://h/db", schema="prod", persist_events=False)
    assert config.naming == Naming(schema="prod")


@pytest.mark.parametrize("schema", ["1abc", "a-b", "a;drop table x", "a b", "a..b", 'x"y'])
def test_invalid_schema_names_are_rejected(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid name"):
        DatabaseConfig(db_url="sqlite://", schema=schema, persist_events=False)


def test_postgres_schema_cannot_have_dots() -> None:
    with pytest.raises(ConfigurationError, match="cannot contain dots"):
        DatabaseConfig(db_url="postgresql://h/db", schema="a.b", persist_events=False)


def test_postgres_schema_length_limit() -> None:
    with pytest.raises(ConfigurationError, match="63"):
        DatabaseConfig(db_url="postgresql://h/db", schema="s" * 64, persist_events=False)


def test_unparsable_url_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DatabaseConfig(
            db_url="postgresql://user:hunter2@host:notaport/db", schema="s", persist_events=False
        )
    assert "hunter2" not in str(caught.value)


def test_repr_and_redacted_url_hide_the_password() -> None:
    config = DatabaseConfig(
        db_url="postgresql://user:hunter2@host/db", schema="s", persist_events=False
    )
    assert "hunter2" not in repr(config)
    assert "hunter2" not in config.redacted_url
    assert "hunter2" not in redact("postgresql://user:hunter2@host/db")
    assert "hunter2" not in redact("not a url://user:hunter2@host")


@pytest.mark.parametrize(
    "schema", ["information_schema", "pg_catalog", "pg_toast", "PG_Catalog", "pg_anything"]
)
def test_reserved_postgres_schemas_are_refused(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        DatabaseConfig(db_url="postgresql://h/db", schema=schema, persist_events=False)


def test_an_empty_postgres_schema_is_refused_rather_than_falling_into_public() -> None:
    with pytest.raises(ConfigurationError, match=r"empty.*search_path"):
        DatabaseConfig(db_url="postgresql://h/db", schema="", persist_events=False)


def test_public_is_accepted_when_named() -> None:
    config = DatabaseConfig(db_url="postgresql://h/db", schema="public", persist_events=False)
    assert config.naming == Naming(schema="public")


@pytest.mark.parametrize(
    ("naming", "why"),
    [
        ({"schema": ""}, "empty"),
        ({"schema": "information_schema"}, "reserved"),
        ({"schema": "pg_catalog"}, "reserved"),
        ({"schema": 'x"; drop schema public; --'}, "not a valid name"),
        ({"schema": "s" * 64}, "63 bytes"),
        ({"prefix": "a b_"}, "not a valid name"),
        ({"prefix": "1_"}, "not a valid name"),
    ],
)
def test_a_naming_given_directly_is_validated_as_well(naming: dict[str, str], why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        Naming(**naming)


def test_the_store_refuses_a_reserved_schema_however_it_is_named() -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        SQLAlchemyStore.from_url("postgresql://h/db", schema="pg_catalog")
