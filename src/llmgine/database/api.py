"""The seed's module functions, best-effort: no database fault ever raises out of them.

Each call reads the configuration from the environment (see `DatabaseEngine`).
A fault is logged once per kind (with the URL's password hidden) and counted;
the next call tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from llmgine.database.engine import DatabaseEngine
from llmgine.errors import ConfigurationError, LlmginePersistenceError, UnstorableEventError
from llmgine.messages.events import Event
from llmgine.messages.scheduled_events import ScheduledEvent

logger = logging.getLogger(__name__)
_faults = DatabaseEngine.faults

SAVE_TIMEOUT_S = 10.0
"""How long `save_unfinished_events` waits for a commit before returning; the
writer keeps retrying in the background after that."""


def save_unfinished_events(events: Sequence[ScheduledEvent]) -> None:
    """Store scheduled events so a later `get_and_delete_unfinished_events` restores them.

    Returns once they are committed, or after `SAVE_TIMEOUT_S` if the database
    is failing, in which case the writer keeps retrying for as long as the
    process lives (and for a few seconds at exit). Idempotent by ``event_id``.
    """
    if not events:
        return
    try:
        future = DatabaseEngine.get_writer().submit_scheduled(list(events))
        future.result(timeout=SAVE_TIMEOUT_S)
    except FutureTimeout:
        _faults.report(
            "save-timeout",
            "%d scheduled events not yet saved after %.0f s; still retrying in the background",
            len(events),
            SAVE_TIMEOUT_S,
            level=logging.ERROR,
        )
    except UnstorableEventError as exc:
        logger.error("scheduled events not saved: %s", exc)
    except ConfigurationError:
        pass  # logged once, when the configuration was read
    except (LlmginePersistenceError, OSError) as exc:
        _faults.report("save", "scheduled events not saved: %s", exc, level=logging.ERROR)


def get_and_delete_unfinished_events() -> list[ScheduledEvent]:
    """Remove and return every stored scheduled event that can be restored, in due order.

    Atomic (see `ScheduledEventStore.take_all`); undecodable rows stay stored,
    quarantined with a reason. Returns an empty list when the database fails.
    """
    try:
        return DatabaseEngine.get_store().take_all()
    except ConfigurationError:
        return []
    except (LlmginePersistenceError, OSError) as exc:
        _faults.report("restore", "scheduled events not restored: %s", exc)
        return []


def persist_event(event: Event) -> None:
    """Queue ``event`` for the event log when ``LLMGINE_PERSIST_EVENTS`` is on.

    Never blocks on the database: a background writer batches the entries.
    """
    try:
        config = DatabaseEngine.get_config()
        if config.persist_events:
            DatabaseEngine.get_writer(config).submit_log(event)
    except ConfigurationError:
        pass
    except (LlmginePersistenceError, OSError) as exc:
        _faults.report("persist", "event not logged: %s", exc)


def reset_engine() -> None:
    """Flush pending writes and forget the engine; the next call starts afresh (tests)."""
    DatabaseEngine.reset_engine()


def drop_all() -> None:
    """Drop the configured tables, for a clean slate in tests. Best-effort."""
    try:
        DatabaseEngine.drop_all()
    except ConfigurationError:
        pass
    except (LlmginePersistenceError, OSError) as exc:
        logger.warning("drop_all failed: %s", exc)
