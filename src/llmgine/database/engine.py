"""DatabaseEngine: the process-wide holder behind the seed's module functions.

It is the one sanctioned global. It reads the configuration from the
environment on every call; when ``LLMGINE_DB_URL``, ``LLMGINE_DB_SCHEMA`` or
``LLMGINE_PERSIST_EVENTS`` changed, it flushes the writer of the old
configuration, disposes the old engine and builds the new one on next use.
Everything it holds (engine, store, writer) is created lazily, under a lock,
and built from the same `SQLAlchemyStore` and `Writer` the rest of llmgine uses.

A configuration change is noticed by whichever call reads the environment
next, often `persist_event` on the bus's event loop; so the old writer is
flushed and the old engine disposed on a background thread, never by that
caller. `DatabaseEngine.flush` waits for those releases too.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import ClassVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from llmgine.database._faultlog import FaultLog
from llmgine.database._model_session import models_engine
from llmgine.database.config import (
    DatabaseConfig,
    parse_log_settings,
    parse_pool,
    read_environment,
)
from llmgine.database.connect import create_engine_for
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine.database.writer import Writer
from llmgine.errors import ConfigurationError

logger = logging.getLogger(__name__)

FLUSH_ON_CHANGE_S = 5.0
"""How long a configuration change or reset waits for the old writer to drain."""


class DatabaseEngine:
    """Thread-safe holder of the engine, store and writer for the current configuration."""

    _lock: ClassVar[threading.RLock] = threading.RLock()
    _raw: ClassVar[tuple[str, ...] | None] = None
    _config: ClassVar[DatabaseConfig | None] = None
    _config_error: ClassVar[ConfigurationError | None] = None
    _engine: ClassVar[Engine | None] = None
    _store: ClassVar[SQLAlchemyStore | None] = None
    _models_engine: ClassVar[tuple[SQLAlchemyStore, Engine] | None] = None
    _writer: ClassVar[Writer | None] = None
    _atexit_registered: ClassVar[bool] = False
    _releasing: ClassVar[list[threading.Thread]] = []
    faults: ClassVar[FaultLog] = FaultLog(logging.getLogger("llmgine.database"))
    """Rate-limited fault reports of the seed API; cleared when the configuration changes."""

    @classmethod
    def get_config(cls) -> DatabaseConfig:
        """The configuration now in the environment; resets the engine if it changed.

        Raises `ConfigurationError` when the environment holds an invalid value.
        """
        raw = read_environment()
        config, error = cls._config, cls._config_error
        if raw != cls._raw:
            with cls._lock:
                if raw != cls._raw:
                    cls._apply(raw)
                config, error = cls._config, cls._config_error
        if error is not None:
            raise error
        assert config is not None
        return config

    @classmethod
    def _apply(cls, raw: tuple[str, ...]) -> None:
        log = parse_log_settings(*raw[2:5])
        for ignored in log.ignored:
            logger.error("llmgine event-log setting %s (scheduled events are persisted)", ignored)
        try:
            new: DatabaseConfig | None = DatabaseConfig(
                db_url=raw[0],
                schema=raw[1],
                persist_events=log.persist_events,
                log_retention=log.retention,
                pool=parse_pool(*raw[5:8]),
                ignored=log.ignored,
            )
            error = None
        except ConfigurationError as exc:
            new, error = None, exc
            logger.error("llmgine persistence disabled: %s", exc)
        if cls._config is not None and (new is None or new.has_changed(cls._config)):
            logger.debug("database configuration changed; resetting the engine")
            cls._release(wait=False)
        cls.faults.clear()
        cls._raw, cls._config, cls._config_error = raw, new, error

    @classmethod
    def get_store(cls) -> SQLAlchemyStore:
        """The store for the current configuration; it creates its tables on first use."""
        config = cls.get_config()
        with cls._lock:
            if cls._config_error is not None:  # set meanwhile by another thread
                raise cls._config_error
            if cls._store is None or cls._config is not config:
                try:
                    engine = create_engine_for(config.url, pool=config.pool)
                except ConfigurationError as exc:  # unknown driver: remember it, log it once
                    logger.error("llmgine persistence disabled: %s", exc)
                    cls._config_error = exc
                    raise
                cls._engine, cls._store = engine, SQLAlchemyStore(engine, naming=config.naming)
            return cls._store

    @classmethod
    def get_engine(cls) -> Engine:
        """The engine for the current configuration, with schema and tables ready."""
        store = cls.get_store()
        store.setup()
        return store.engine

    @classmethod
    def get_session(cls) -> Session:
        """A new ORM session on the current engine; close it when done.

        On it the exported models (`ScheduledEventRecord`, `EventRecord`) name the
        configured tables: the schema on PostgreSQL, the prefixed table on SQLite.
        """
        store = cls.get_store()
        store.setup()
        with cls._lock:
            held = cls._models_engine
            if held is None or held[0] is not store:
                held = cls._models_engine = (store, models_engine(store.engine, store.naming))
        return Session(held[1])

    @classmethod
    def get_writer(cls, config: DatabaseConfig | None = None) -> Writer:
        """The background writer for the current configuration's store.

        ``config``: the configuration the caller has just read with `get_config`,
        so the environment is not read twice (`persist_event` runs for every event).
        """
        writer = cls._writer
        if config is not None and writer is not None and cls._config is config:
            return writer
        store = cls.get_store()
        with cls._lock:
            if cls._writer is None:
                config = cls._config
                retention = None if config is None else config.log_retention
                cls._writer = Writer(log=store, scheduled=store, retention=retention)
                if not cls._atexit_registered:
                    atexit.register(cls._flush_at_exit)
                    cls._atexit_registered = True
            return cls._writer

    @classmethod
    def reset_engine(cls) -> None:
        """Flush and stop the writer, dispose the engine, forget the configuration.

        Waits for everything it releases, including earlier configurations'.
        """
        with cls._lock:
            cls._release(wait=True)
            cls._raw = cls._config = cls._config_error = None
            cls.faults.clear()
        cls._join_releases(None)

    @classmethod
    def flush(cls, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written, for this configuration and for
        those changed away from; False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        writer = cls._writer
        flushed = writer is None or writer.flush(timeout)
        return cls._join_releases(deadline) and flushed

    @classmethod
    def _join_releases(cls, deadline: float | None) -> bool:
        for thread in list(cls._releasing):
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        with cls._lock:
            cls._releasing[:] = [t for t in cls._releasing if t.is_alive()]
            return not cls._releasing

    @classmethod
    def drop_all(cls) -> None:
        """Drop the current configuration's tables (not a PostgreSQL schema itself)."""
        store = cls.get_store()
        with cls._lock:
            if cls._writer is not None:
                cls._writer.flush(FLUSH_ON_CHANGE_S)
        store.drop()

    @classmethod
    def _release(cls, *, wait: bool) -> None:
        writer, engine = cls._writer, cls._engine
        cls._writer = cls._store = cls._engine = cls._models_engine = None

        def finish() -> None:
            if writer is not None:
                writer.stop(FLUSH_ON_CHANGE_S)
            if engine is not None:
                engine.dispose()

        if wait:
            finish()
        elif writer is not None or engine is not None:
            thread = threading.Thread(target=finish, name="llmgine-release", daemon=True)
            thread.start()
            cls._releasing.append(thread)

    @classmethod
    def _flush_at_exit(cls) -> None:
        writer = cls._writer
        if writer is not None:
            writer.stop(FLUSH_ON_CHANGE_S)
        cls._join_releases(time.monotonic() + FLUSH_ON_CHANGE_S)
