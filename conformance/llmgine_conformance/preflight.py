"""Checking a database URL before the suite runs, so a bad target ends the run in seconds.

`check_target` connects once, with a short timeout, and sorts a failure into
one of four classes, each with its own exit status of ``llmgine-conformance``:

====  ==================  ===============================================================
64    bad URL             the URL cannot be parsed, or names an unknown or missing driver
66    missing database    the server answers but has no such database (or file directory)
69    unreachable         nothing answers at the host and port, or it does not answer in time
77    bad credentials     the server refuses the user or the password
====  ==================  ===============================================================

The message is one line and shows the URL with its password hidden.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError

from llmgine.database.config import normalize_url
from llmgine.database.connect import create_engine_for
from llmgine.errors import ConfigurationError
from llmgine.redaction import redact

EXIT_BAD_URL = 64
EXIT_MISSING_DATABASE = 66
EXIT_UNREACHABLE = 69
EXIT_BAD_CREDENTIALS = 77

EXIT_CODES = {
    EXIT_BAD_URL: "bad URL: unparseable, or an unknown or missing driver",
    EXIT_MISSING_DATABASE: "missing database: the server has no such database",
    EXIT_UNREACHABLE: "unreachable: nothing answers at the host and port in time",
    EXIT_BAD_CREDENTIALS: "bad credentials: the server refuses the user or password",
}

CONNECT_TIMEOUT_S = 5

_CREDENTIAL_STATES = frozenset({"28000", "28P01"})  # invalid authorization, invalid password
_MISSING_DATABASE_STATES = frozenset({"3D000"})  # invalid catalog name
_CREDENTIAL_WORDS = ("password authentication failed", "no password supplied",
                     "authentication failed", "access denied")  # fmt: skip


@dataclass(frozen=True)
class TargetProblem:
    """Why the target cannot be tested: the exit status and a one-line message."""

    exit_code: int
    message: str


def check_target(raw_url: str) -> TargetProblem | None:
    """None when ``raw_url`` can be connected to; else the problem (see the module docstring)."""
    shown = redact(raw_url)
    try:
        url = normalize_url(raw_url)
        overrides: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            overrides["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = create_engine_for(url, **overrides)
    except ConfigurationError as exc:
        return TargetProblem(EXIT_BAD_URL, f"bad URL: {_one_line(exc)}")
    try:
        with engine.connect():
            return None
    except DBAPIError as exc:
        error = exc.orig or exc
        exit_code, kind = classify(error)
        return TargetProblem(exit_code, f"{kind} ({shown}): {_one_line(error)}")
    finally:
        engine.dispose()


def classify(error: BaseException) -> tuple[int, str]:
    """The exit status and the name of the class of a driver's connection error."""
    state = getattr(error, "sqlstate", None)
    text = str(error).lower()
    unknown_role = "role" in text and "does not exist" in text
    if state in _CREDENTIAL_STATES or unknown_role or any(w in text for w in _CREDENTIAL_WORDS):
        return EXIT_BAD_CREDENTIALS, "bad credentials"
    if state in _MISSING_DATABASE_STATES or ("database" in text and "does not exist" in text):
        return EXIT_MISSING_DATABASE, "missing database"
    if isinstance(error, sqlite3.OperationalError) and "unable to open" in text:
        return EXIT_MISSING_DATABASE, "missing database"
    return EXIT_UNREACHABLE, "unreachable"


def _one_line(error: object) -> str:
    return redact(" ".join(str(error).split()))
