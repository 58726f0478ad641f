"""``llmgine-conformance``: run the installed conformance suite against a backend.

    llmgine-conformance                          # the database LLMGINE_DB_URL names
                                                 # (default: the embedded sqlite:///./message_bus.db)
    llmgine-conformance --url URL                # any database, through the reference store
    llmgine-conformance --store module:factory   # your own store (see llmgine_conformance.backends)
    llmgine-conformance --backend all            # every built-in backend

Anything else on the command line goes to pytest (``-x``, ``-k restart``...).
A database URL (and, for the postgres backends, LLMGINE_TEST_POSTGRES_URL)
is checked before any test is collected: a bad URL, a server
that does not answer, refused credentials or a missing database end the run at
once with one line saying which (exit status below). The run shows pytest's
progress and ends with a table of capability by backend and a verdict line. Each test works in a
namespace of its own (a schema, or a table prefix) and removes it afterwards,
so the tables an application already keeps in that database are not touched.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sqlite3
import sys
import tempfile
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from llmgine.database.config import normalize_url, read_environment
from llmgine.errors import ConfigurationError
from llmgine_conformance.backends import postgres_url_from_environment
from llmgine_conformance.preflight import EXIT_CODES, check_target

INI = Path(__file__).with_name("conformance.ini")
GUIDE = Path(__file__).with_name("AUTHORING.md")
_USES_POSTGRES = frozenset({"postgres", "faulty-postgres", "faulty", "all"})

REQUIREMENTS = {"pytest": "pytest", "pytest_asyncio": "pytest-asyncio", "hypothesis": "hypothesis"}
"""What the suite imports beyond llmgine (module: distribution): the ``conformance`` extra."""
EXTRA = "llmgine[conformance]"
EXIT_NOT_INSTALLED = 78


def _epilog() -> str:
    codes = [(0, "every test passed"), (1, "some tests failed"),
             (2, "interrupted"), (4, "pytest usage error"), (5, "no tests collected"),
             (EXIT_NOT_INSTALLED, f"pytest etc. missing: pip install '{EXTRA}'")]  # fmt: skip
    lines = [f"  {code:>3}  {meaning}" for code, meaning in [*codes, *EXIT_CODES.items()]]
    return "exit status:\n" + "\n".join(lines)


@dataclass(frozen=True)
class Invocation:
    """What to run: the pytest arguments, and the database URL to check first (if any)."""

    pytest_args: list[str]
    url: str | None


DESCRIPTION = """\
Run the installed llmgine conformance suite against a backend:

  llmgine-conformance                          the database LLMGINE_DB_URL names
                                               (default: sqlite:///./message_bus.db)
  llmgine-conformance --url URL                any database, through the reference store
  llmgine-conformance --store module:factory   your own store (llmgine_conformance.backends)
  llmgine-conformance --backend all            every built-in backend

Anything else on the command line goes to pytest (-x, -k restart, ...). A
database URL is checked before any test is collected: a bad URL, a server that
does not answer, refused credentials or a missing database end the run at once
with one line saying which (exit status below). The run shows pytest's progress
and ends with a table of capability by backend and a verdict line. Each test
works in a namespace of its own (a schema, or a table prefix) and removes it
afterwards, so the tables an application keeps in that database are not touched."""


def parse(argv: list[str] | None = None) -> Invocation:
    """The pytest command line for these ``llmgine-conformance`` arguments."""
    parser = argparse.ArgumentParser(
        prog="llmgine-conformance",
        description=DESCRIPTION,
        epilog=_epilog(),
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
    parser.add_argument(
        "--llmgine-postgres-url",
        metavar="URL",
        help="the PostgreSQL server of the postgres backends (default: "
        "LLMGINE_TEST_POSTGRES_URL, else testcontainers when Docker answers)",
    )
    parser.add_argument(
        "--llmgine-timeout",
        metavar="SECONDS",
        help="fail a test still running after this long (default 300; 0: never)",
    )
    parser.add_argument(
        "--guide",
        action="store_true",
        help="print the guide for backend authors (how to plug in your store) and exit",
    )
    known, rest = parser.parse_known_args(argv)
    if known.guide:
        print(GUIDE.read_text(encoding="utf-8"))
        parser.exit()
    passed = [arg for option in ("postgres_url", "timeout")
              if (value := getattr(known, f"llmgine_{option}")) is not None
              for arg in (f"--llmgine-{option.replace('_', '-')}", value)]  # fmt: skip
    url = None
    if known.store:
        selection = ["--llmgine-store", known.store]
    elif known.backend:
        selection = [arg for name in known.backend for arg in ("--llmgine-backend", name)]
        names = {part.strip() for value in known.backend for part in value.split(",")}
        if names & _USES_POSTGRES:  # a container is checked by testcontainers
            url = known.llmgine_postgres_url or postgres_url_from_environment()
    else:
        url = known.url or read_environment()[0]
        selection = ["--llmgine-url", url]
    args = ["-c", str(INI), "--rootdir", str(INI.parent), "--pyargs", "llmgine_conformance",
            *selection, *passed, *rest]  # fmt: skip
    return Invocation(args, url)


def pytest_arguments(argv: list[str] | None = None) -> list[str]:
    """The pytest command line for these ``llmgine-conformance`` arguments."""
    return parse(argv).pytest_args


def missing_requirements() -> list[str]:
    """The distributions of `REQUIREMENTS` that are not installed (found without importing
    them: pytest must import its plugins itself to rewrite their asserts)."""
    return [
        dist for module, dist in REQUIREMENTS.items() if importlib.util.find_spec(module) is None
    ]


def main(argv: list[str] | None = None) -> int:
    invocation = parse(argv)
    missing = missing_requirements()
    if missing:
        print(f"llmgine-conformance: the suite needs {', '.join(missing)}, not installed here; "
              f"install the suite's extra: pip install '{EXTRA}'", file=sys.stderr)  # fmt: skip
        return EXIT_NOT_INSTALLED
    new_file = None if invocation.url is None else _absent_sqlite_file(invocation.url)
    try:
        if invocation.url is not None:
            problem = check_target(invocation.url)
            if problem is not None:
                print(f"llmgine-conformance: {problem.message}", file=sys.stderr)
                return problem.exit_code
        return _run_pytest(invocation.pytest_args)
    finally:
        if new_file is not None:
            _remove_if_empty(new_file)


def _absent_sqlite_file(raw_url: str) -> Path | None:
    """The SQLite file ``raw_url`` names, if it does not exist yet (the run creates it)."""
    try:
        url = normalize_url(raw_url)
    except ConfigurationError:
        return None
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or url.query:
        return None
    path = Path(database).absolute()
    return None if path.exists() else path


def _remove_if_empty(path: Path) -> None:
    """Remove the SQLite file the run created if it holds nothing: each test removes its own
    tables, and an empty ``message_bus.db`` left in the working directory only misleads."""
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(path)) as conn:
            empty = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    except sqlite3.Error:
        return
    if empty:
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            leftover.unlink(missing_ok=True)


def _run_pytest(args: list[str]) -> int:
    import pytest

    if "HYPOTHESIS_STORAGE_DIRECTORY" in os.environ:
        return int(pytest.main(args))
    # hypothesis keeps its example database in ./.hypothesis unless told otherwise: the
    # suite leaves nothing behind in the directory it is run from
    with tempfile.TemporaryDirectory(prefix="llmgine-conformance-") as scratch:
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = scratch
        try:
            return int(pytest.main(args))
        finally:
            del os.environ["HYPOTHESIS_STORAGE_DIRECTORY"]


def entry() -> None:
    """The ``llmgine-conformance`` command: `main`, then exit without waiting for threads a
    hung store call left running (a timed-out or interrupted test): Python would otherwise
    wait for them at exit, for ever."""
    status = main()
    stuck = [t for t in threading.enumerate() if t.is_alive() and not t.daemon]
    stuck.remove(threading.main_thread())
    if not stuck:
        sys.exit(status)
    names = ", ".join(sorted({t.name for t in stuck}))
    print(f"llmgine-conformance: not waiting for {len(stuck)} thread(s) still running "
          f"({names})", file=sys.stderr)  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
