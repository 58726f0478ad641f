"""``llmgine-conformance``: run the installed conformance suite against a backend.

    llmgine-conformance                          # the database LLMGINE_DB_URL names
                                                 # (default: the embedded sqlite:///./message_bus.db)
    llmgine-conformance --url URL                # any database, through the reference store
    llmgine-conformance --store module:factory   # your own store (see llmgine_conformance.backends)
    llmgine-conformance --backend all            # every built-in backend

Anything else on the command line goes to pytest (``-x``, ``-k restart``...).
The run ends with a table of capability by backend. Each test works in a
namespace of its own (a schema, or a table prefix) and removes it afterwards,
so the tables an application already keeps in that database are not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from llmgine.database.config import read_environment

INI = Path(__file__).with_name("conformance.ini")


def pytest_arguments(argv: list[str] | None = None) -> list[str]:
    """The pytest command line for these ``llmgine-conformance`` arguments."""
    parser = argparse.ArgumentParser(
        prog="llmgine-conformance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="a database URL, tested through the reference store")
    target.add_argument("--store", metavar="MODULE:FACTORY", help="a factory(tmp_path) -> Backend")
    target.add_argument(
        "--backend",
        action="append",
        help="built-in: memory, sqlite, postgres, faulty, all",
    )
    known, rest = parser.parse_known_args(argv)
    if known.store:
        selection = ["--llmgine-store", known.store]
    elif known.backend:
        selection = [arg for name in known.backend for arg in ("--llmgine-backend", name)]
    else:
        selection = ["--llmgine-url", known.url or read_environment()[0]]
    return ["-c", str(INI), "--rootdir", str(INI.parent), "--pyargs", "llmgine_conformance",
            *selection, *rest]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return int(pytest.main(pytest_arguments(argv)))


if __name__ == "__main__":
    sys.exit(main())
