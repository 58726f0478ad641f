"""``llmgine-db``: diagnostics for the environment-configured store.

``llmgine-db check`` says which database the environment selects, whether it
can be reached, which schema version it holds and how many events wait in it.
``llmgine-db quarantined`` lists the rows that could not be restored, with why.
Exit status 0 when healthy, 1 when not, 2 for a bad configuration (also for an
event-log setting that is ignored because it is invalid).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from sqlalchemy import func, select

from llmgine.database.engine import DatabaseEngine
from llmgine.errors import ConfigurationError, LlmginePersistenceError


def check(out: TextIO) -> int:
    try:
        config = DatabaseEngine.get_config()
    except ConfigurationError as exc:
        print(f"configuration: INVALID: {exc}", file=out)
        return 2
    print(f"url:            {config.redacted_url}", file=out)
    where = (
        f"schema {config.schema!r}"
        if config.is_postgres
        else f"table prefix {config.naming.prefix!r}"
    )
    print(f"tables:         {where}", file=out)
    print(f"event log:      {'on' if config.persist_events else 'off'}", file=out)
    for ignored in config.ignored:
        print(f"configuration:  IGNORED: {ignored}", file=out)
    try:
        store = DatabaseEngine.get_store()
        if not store.tables_present():  # check only looks: it creates no file and no table
            print("schema version: none: no tables yet (the first write creates them)", file=out)
            return 2 if config.ignored else 0
        store.setup()  # checks schema_version; the tables are there
        tables = store.tables
        with store.engine.connect() as conn:
            version = conn.scalar(
                select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")
            )
            pending = conn.scalar(select(func.count()).select_from(tables.scheduled))
            logged = conn.scalar(select(func.count()).select_from(tables.log))
        quarantined = len(store.quarantined())
    except ConfigurationError as exc:
        print(f"configuration: INVALID: {exc}", file=out)
        return 2
    except LlmginePersistenceError as exc:
        print(f"database:       UNAVAILABLE: {exc}", file=out)
        return 1
    print(f"schema version: {version}", file=out)
    print(f"scheduled:      {pending} stored, {quarantined} quarantined", file=out)
    print(f"event log rows: {logged}", file=out)
    return 2 if config.ignored else 0


def quarantined(out: TextIO) -> int:
    try:
        rows = DatabaseEngine.get_store().quarantined()
    except ConfigurationError as exc:
        print(f"configuration: INVALID: {exc}", file=out)
        return 2
    except LlmginePersistenceError as exc:
        print(f"database: UNAVAILABLE: {exc}", file=out)
        return 1
    for row in rows:
        print(f"{row.event_id}\t{row.event_class_name}\t{row.reason}", file=out)
    print(f"{len(rows)} quarantined", file=out)
    return 0


DESCRIPTION = """\
Diagnostics for the database the environment configures (LLMGINE_DB_URL,
LLMGINE_DB_SCHEMA and the other LLMGINE_* variables): the one the bus and the
module functions use. Neither command creates a file, a schema or a table."""

EPILOG = """\
exit status:
    0  healthy
    1  the database cannot be reached or used
    2  a bad configuration (also an event-log setting ignored because it is invalid)"""


def parser() -> argparse.ArgumentParser:
    """The ``llmgine-db`` command line: one subcommand per diagnostic, each with its help."""
    top = argparse.ArgumentParser(
        prog="llmgine-db",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "check",
        help="which database and tables the environment selects, whether they can be "
        "reached, their schema version, how many events wait and how many are logged",
        description="Say which database and tables the environment selects, whether they "
        "can be reached, which schema version they hold, how many scheduled events wait "
        "(and how many are quarantined) and how many event-log rows there are.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser(
        "quarantined",
        help="the stored scheduled events that could not be restored, each with the reason",
        description="List the scheduled events that could not be restored (unknown class, "
        "malformed data): event id, class and reason, one per line. They stay stored.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return top


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    try:
        return check(out) if args.command == "check" else quarantined(out)
    finally:
        DatabaseEngine.reset_engine()


if __name__ == "__main__":
    sys.exit(main())
