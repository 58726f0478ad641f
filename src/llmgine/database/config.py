"""DatabaseConfig: the only code in llmgine that reads the environment.

``LLMGINE_DB_URL``          database URL (default ``sqlite:///./message_bus.db``);
                            a plain ``postgresql://`` or ``postgres://`` URL uses psycopg 3
``LLMGINE_DB_SCHEMA``       PostgreSQL schema, or SQLite table prefix (default ``message_bus``)
``LLMGINE_PERSIST_EVENTS``  ``1`` turns the event log on (default off); booleans are
                            ``1/0/true/false/yes/no/on/off``, any case
``LLMGINE_LOG_RETENTION``   optional: purge event-log entries older than this (``30d``, ``12h``...)
``LLMGINE_LOG_MAX_ROWS``    optional: keep only this many newest event-log entries
``LLMGINE_DB_POOL_SIZE``    connections kept open per engine (default 2; ``0``: none kept)
``LLMGINE_DB_MAX_OVERFLOW`` connections opened beyond the pool when busy (default 3)
``LLMGINE_DB_POOL_TIMEOUT`` seconds to wait for a free connection (default 10)

An invalid URL, schema or pool setting disables persistence. An invalid event-log
setting (the last three of the first five) is ignored, with the reason kept in
`DatabaseConfig.ignored` and logged as an error: the event log stays off (an invalid
flag) or keeps everything (an invalid limit), and scheduled events are persisted as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from llmgine.database.models import IDENTIFIER, Naming
from llmgine.database.retention import Retention, parse_duration
from llmgine.errors import ConfigurationError
from llmgine.redaction import redact as redact  # re-exported: its former home

ENV_URL = "LLMGINE_DB_URL"
ENV_SCHEMA = "LLMGINE_DB_SCHEMA"
ENV_PERSIST_EVENTS = "LLMGINE_PERSIST_EVENTS"
ENV_LOG_RETENTION = "LLMGINE_LOG_RETENTION"
ENV_LOG_MAX_ROWS = "LLMGINE_LOG_MAX_ROWS"
ENV_POOL_SIZE = "LLMGINE_DB_POOL_SIZE"
ENV_MAX_OVERFLOW = "LLMGINE_DB_MAX_OVERFLOW"
ENV_POOL_TIMEOUT = "LLMGINE_DB_POOL_TIMEOUT"

DEFAULT_URL = "sqlite:///./message_bus.db"
DEFAULT_SCHEMA = "message_bus"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class PoolSettings:
    """The connection pool of an engine: small by default, since one bus needs only a few
    connections (its writer thread and a few store calls at a time).

    ``size`` connections are kept open, up to ``max_overflow`` more are opened when all are
    busy, and a caller waits at most ``timeout`` seconds for one. ``size=0`` keeps none open
    (SQLAlchemy's ``NullPool``). An in-memory SQLite database always shares one connection.
    """

    size: int = 2
    max_overflow: int = 3
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.size < 0 or self.max_overflow < 0 or not self.timeout > 0:
            raise ConfigurationError(f"invalid pool settings {self!r}")


def read_environment(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The raw settings (url, schema, persist_events, log retention, log max rows, pool size,
    max overflow, pool timeout); the one read of ``os.environ``."""
    env = os.environ if environ is None else environ
    return (
        env.get(ENV_URL, DEFAULT_URL),
        env.get(ENV_SCHEMA, DEFAULT_SCHEMA),
        env.get(ENV_PERSIST_EVENTS, "0"),
        env.get(ENV_LOG_RETENTION, ""),
        env.get(ENV_LOG_MAX_ROWS, ""),
        env.get(ENV_POOL_SIZE, ""),
        env.get(ENV_MAX_OVERFLOW, ""),
        env.get(ENV_POOL_TIMEOUT, ""),
    )


def parse_pool(size: str, max_overflow: str, timeout: str) -> PoolSettings:
    """The `PoolSettings` the three variables ask for (empty: the default);
    `ConfigurationError` naming the variable for a bad value."""
    default = PoolSettings()
    return PoolSettings(
        size=_whole(ENV_POOL_SIZE, size, default.size),
        max_overflow=_whole(ENV_MAX_OVERFLOW, max_overflow, default.max_overflow),
        timeout=_seconds(ENV_POOL_TIMEOUT, timeout, default.timeout),
    )


def _whole(name: str, raw: str, default: int) -> int:
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigurationError(f"{name}={raw!r} is negative")
    return value


def _seconds(name: str, raw: str, default: float) -> float:
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ConfigurationError(f"{name}={raw!r} is not a positive number of seconds")
    return value


def parse_retention(max_age: str, max_rows: str) -> Retention | None:
    """The event-log `Retention` the two variables ask for, or None; `ConfigurationError`."""
    if not max_age.strip() and not max_rows.strip():
        return None
    return Retention(max_age=_max_age(max_age), max_rows=_max_rows(max_rows))


def _max_age(raw: str) -> timedelta | None:
    if not raw.strip():
        return None
    try:
        age = parse_duration(raw)
    except ConfigurationError:
        raise ConfigurationError(
            f"{ENV_LOG_RETENTION}={raw!r} is not a duration: use a number and a unit, "
            "s, m, h, d or w (e.g. 30d)"
        ) from None
    if age <= timedelta(0):
        raise ConfigurationError(f"{ENV_LOG_RETENTION}={raw!r} is not a positive duration")
    return age


def _max_rows(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        rows = int(raw)
    except ValueError:
        raise ConfigurationError(f"{ENV_LOG_MAX_ROWS}={raw!r} is not a whole number") from None
    if rows < 0:
        raise ConfigurationError(f"{ENV_LOG_MAX_ROWS}={raw!r} is negative")
    return rows


def parse_flag(raw: str, name: str = ENV_PERSIST_EVENTS) -> bool:
    """``1/true/yes/on`` and ``0/false/no/off/(empty)``, any case; else `ConfigurationError`."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not one of 1/0/true/false/yes/no/on/off")


@dataclass(frozen=True)
class LogSettings:
    """The event-log settings of the environment, each invalid one replaced by its default.

    ``ignored`` says, one sentence each, what was ignored and what is done instead.
    """

    persist_events: bool
    retention: Retention | None
    ignored: tuple[str, ...] = ()


def parse_log_settings(persist: str, max_age: str, max_rows: str) -> LogSettings:
    """The `LogSettings` of the three variables; never raises: an invalid value is ignored."""
    ignored: list[str] = []

    def lenient(parse: Callable[[str], Any], raw: str, default: Any, instead: str) -> Any:
        try:
            return parse(raw)
        except ConfigurationError as exc:
            ignored.append(f"{exc}: ignored, {instead}")
            return default

    persist_events = lenient(parse_flag, persist, False, "the event log is off")
    age = lenient(_max_age, max_age, None, "log entries are kept whatever their age")
    rows = lenient(_max_rows, max_rows, None, "log entries are kept whatever their number")
    retention = None if age is None and rows is None else Retention(max_age=age, max_rows=rows)
    return LogSettings(persist_events, retention, tuple(ignored))


def normalize_url(raw: str) -> URL:
    """Parse ``raw``; plain PostgreSQL URLs get the psycopg 3 driver."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise ConfigurationError(f"cannot parse database URL {redact(raw)!r}") from None
    except ValueError as exc:  # e.g. a bad port
        raise ConfigurationError(f"cannot parse database URL {redact(raw)!r}: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def validate_schema(schema: str, *, postgres: bool) -> None:
    """Raise `ConfigurationError` unless ``schema`` is a usable name for this backend.

    The rules themselves are `Naming`'s (`llmgine.database.models`), checked by
    building the naming; this adds what only the variable's spelling can say.
    """
    if postgres and schema == "":
        raise ConfigurationError(
            f"{ENV_SCHEMA} is empty: on PostgreSQL name a schema (default message_bus); "
            "the tables would otherwise land in whichever schema the search_path names "
            "first, usually public"
        )
    if schema and not all(IDENTIFIER.fullmatch(part) for part in schema.split(".")):
        raise ConfigurationError(
            f"{ENV_SCHEMA}={schema!r} is not a valid name: use letters, digits and "
            "underscores, not starting with a digit (dots separate parts on SQLite)"
        )
    if postgres and "." in schema:
        raise ConfigurationError(
            f"{ENV_SCHEMA}={schema!r}: a PostgreSQL schema name cannot contain dots"
        )
    try:
        naming_for(schema, postgres=postgres)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{ENV_SCHEMA}: {exc}") from None


def naming_for(schema: str, *, postgres: bool) -> Naming:
    """PostgreSQL: the schema. Elsewhere: a table prefix (``a.b`` gives ``a_b_``)."""
    if postgres:
        return Naming(schema=schema)
    return Naming(prefix=schema.replace(".", "_") + "_" if schema else "")


@dataclass(frozen=True, init=False, eq=False)
class DatabaseConfig:
    """Validated database settings; an argument left out is read from the environment.

    ``DatabaseConfig()`` reads the environment, as the original module did (and
    the two optional retention variables). Raises `ConfigurationError` for an
    unparsable URL, an invalid schema name or invalid pool settings. An invalid
    event-log setting (``LLMGINE_PERSIST_EVENTS``, ``LLMGINE_LOG_RETENTION``,
    ``LLMGINE_LOG_MAX_ROWS``) does not stop scheduled-event persistence: it is
    ignored and said in ``ignored``.
    """

    db_url: str
    schema: str
    persist_events: bool
    log_retention: Retention | None
    pool: PoolSettings
    url: URL = field(repr=False, compare=False)
    ignored: tuple[str, ...] = field(compare=False)
    """The invalid event-log settings ignored, one sentence each (see `parse_log_settings`)."""

    def __init__(
        self,
        *,
        db_url: str | None = None,
        schema: str | None = None,
        persist_events: bool | None = None,
        log_retention: Retention | None = None,
        pool: PoolSettings | None = None,
        environ: Mapping[str, str] | None = None,
        ignored: tuple[str, ...] = (),
    ) -> None:
        if db_url is None or schema is None or persist_events is None:
            env_url, env_schema, env_persist, env_age, env_rows, *env_pool = read_environment(
                environ
            )
            db_url = env_url if db_url is None else db_url
            schema = env_schema if schema is None else schema
            log = parse_log_settings(env_persist, env_age, env_rows)
            persist_events = log.persist_events if persist_events is None else persist_events
            log_retention = log_retention or log.retention
            ignored = ignored + log.ignored
            pool = pool or parse_pool(*env_pool)
        url = normalize_url(db_url)
        validate_schema(schema, postgres=url.get_backend_name() == "postgresql")
        object.__setattr__(self, "db_url", db_url)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "persist_events", persist_events)
        object.__setattr__(self, "log_retention", log_retention)
        object.__setattr__(self, "pool", pool or PoolSettings())
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "ignored", ignored)

    def __repr__(self) -> str:
        return (
            f"DatabaseConfig(db_url={self.redacted_url!r}, schema={self.schema!r}, "
            f"persist_events={self.persist_events!r}, pool={self.pool!r})"
        )

    @property
    def is_postgres(self) -> bool:
        """True when the URL names PostgreSQL."""
        return self.url.get_backend_name() == "postgresql"

    @property
    def redacted_url(self) -> str:
        """The URL with its password hidden."""
        return redact(self.url)

    @property
    def naming(self) -> Naming:
        """PostgreSQL: the schema. Elsewhere: a table prefix (``a.b`` gives ``a_b_``)."""
        return naming_for(self.schema, postgres=self.is_postgres)

    def has_changed(self, other: DatabaseConfig) -> bool:
        """True if URL, schema, the persist flag, the log retention or the pool settings
        differ from ``other``."""
        return self._key() != other._key()

    def _key(self) -> tuple[object, ...]:
        return (self.db_url, self.schema, self.persist_events, self.log_retention, self.pool)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, DatabaseConfig) and not self.has_changed(other)

    def __hash__(self) -> int:
        return hash(self._key())
