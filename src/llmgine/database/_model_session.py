"""Sessions on which the exported ORM models name the configured tables.

`ScheduledEventRecord` and `EventRecord` are mapped to the tables' base names
(``scheduled_events``, ``event_log``), while a configuration puts them in a
PostgreSQL schema or behind a SQLite table prefix. `models_engine` returns the
engine as a proxy (``Engine.execution_options``, sharing its pool) on which
every statement that names a model table names the configured one instead:

- SQLAlchemy's ``schema_translate_map`` marks every table without a schema
  with a placeholder schema when a statement is compiled (compiled statements
  stay cacheable, since the map is applied per execution);
- a ``before_cursor_execute`` hook, registered on the proxy alone, replaces
  ``placeholder.<model table>`` by ``"schema".<table>`` (PostgreSQL) or
  ``"<prefix><table>"`` (SQLite, which has no schemas), and drops the
  placeholder before any other table, which so keeps its own meaning.

Only bound parameters carry data, so the placeholder never meets a value.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, Table, event

from llmgine.database.models import EventRecord, MetaRecord, Naming, ScheduledEventRecord

_PLACEHOLDER = "llmgine_configured_schema__"
_QUALIFIED = re.compile(re.escape(_PLACEHOLDER) + r'\.("(?:[^"]|"")*"|\w+)')


def _model_table_names() -> frozenset[str]:
    names = set()
    for model in (ScheduledEventRecord, EventRecord, MetaRecord):
        table = model.__table__
        assert isinstance(table, Table)
        names.add(table.name)
    return frozenset(names)


MODEL_TABLES = _model_table_names()


def models_engine(engine: Engine, naming: Naming) -> Engine:
    """``engine``, on which the model tables are those of ``naming``; same pool, not owned."""
    if naming == Naming():
        return engine
    preparer = engine.dialect.identifier_preparer

    def configured(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in MODEL_TABLES:
            return name
        if naming.schema is not None:
            return f"{preparer.quote_schema(naming.schema)}.{preparer.quote(name)}"
        return preparer.quote(naming.prefix + name)

    proxy = engine.execution_options(schema_translate_map={None: _PLACEHOLDER})

    @event.listens_for(proxy, "before_cursor_execute", retval=True)
    def rename(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        if _PLACEHOLDER in statement:
            statement = _QUALIFIED.sub(configured, statement)
        return statement, parameters

    return proxy
