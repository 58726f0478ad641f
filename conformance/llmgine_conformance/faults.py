"""The fault-injecting engine: real database faults, on demand, on a real SQLAlchemy engine.

Attach a `FaultInjector` to any engine and arm rules. A rule fires at one
point of the engine's work:

============  ===========================================================
``connect``   opening a new DBAPI connection
``ddl``       CREATE / ALTER / DROP statements
``select``    SELECT (and WITH, PRAGMA, SHOW) statements
``insert``    INSERT statements
``update``    UPDATE statements
``delete``    DELETE statements
``commit``    the DBAPI ``commit()``
============  ===========================================================

and either raises a genuine DBAPI exception of the engine's own driver
(``sqlite3.OperationalError``, ``psycopg.OperationalError`` and its
subclasses), which SQLAlchemy then wraps exactly as it wraps a real fault,
or sleeps (added latency), or runs your callback (for example, to kill the
connection from the server side mid-transaction). Kinds of failure:

- ``error``: an operational error;
- ``disconnect``: a dropped connection, which SQLAlchemy flags as a
  disconnect (``exc.connection_invalidated``) and whose pool it invalidates;
- ``disk_full``, ``timeout``: what the driver raises for those.

A fault strikes before the statement or commit runs, so the database did
nothing; with ``after=True`` it strikes once the work is done, as when the
connection drops before the answer arrives (committed, but the client never
heard). A statement raises at most one fault: of two failing rules due at
once, the second waits for the next statement.

A rule fires a number of times (``times``), with a seeded probability
(``probability``), or for a time window (``for_seconds``), in any
combination. Every firing is recorded in `FaultInjector.injected`.

    injector = FaultInjector(seed=7)
    injector.attach(engine)
    injector.fail("commit", times=2)                    # the next two commits fail
    injector.fail("insert", kind="disconnect", probability=0.1)
    injector.fail("connect", for_seconds=3.0)           # an outage of three seconds
    injector.fail("commit", kind="disconnect", after=True, times=1)  # a lost acknowledgement
    injector.delay("select", 0.2)                       # every SELECT 200 ms slower
    injector.before("delete", lambda: kill_my_backend(), times=1)
    ...
    injector.clear()                                    # the database "recovers"
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy import Engine, event

Point = Literal["connect", "ddl", "select", "insert", "update", "delete", "commit"]
Kind = Literal["error", "disconnect", "disk_full", "timeout"]
Action = Literal["fail", "delay", "call"]
POINTS: tuple[Point, ...] = get_args(Point)
KINDS: tuple[Kind, ...] = get_args(Kind)

_FIRST_WORD = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?:\(\s*)*([A-Za-z]+)", re.DOTALL)
_DISCONNECT = "_llmgine_faults_disconnect"
"""Attribute marking an injected error as a dropped connection, for ``handle_error``."""
_STATEMENT_POINTS: dict[str, Point] = {
    "create": "ddl",
    "alter": "ddl",
    "drop": "ddl",
    "select": "select",
    "with": "select",
    "pragma": "select",
    "show": "select",
    "insert": "insert",
    "update": "update",
    "delete": "delete",
}


@dataclass(frozen=True)
class Injection:
    """One fault the injector caused."""

    point: Point
    action: Action
    kind: Kind | None
    statement: str | None
    at: float
    """``time.monotonic()`` when it fired."""
    after: bool = False
    """True if it fired after the statement or commit took effect (a lost acknowledgement)."""


@dataclass
class Rule:
    """When and how to interfere at one point; see `FaultInjector`."""

    point: Point
    action: Action
    kind: Kind = "error"
    times: int | None = None
    probability: float | None = None
    until: float | None = None
    seconds: float = 0.0
    callback: Callable[[], object] | None = None
    after: bool = False
    fired: int = field(default=0, init=False)

    def due(self, now: float, rng: random.Random) -> bool:
        if self.until is not None and now > self.until:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.probability is not None and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


def statement_point(statement: str) -> Point | None:
    """The point a SQL statement belongs to, or None (BEGIN, SAVEPOINT, ...)."""
    match = _FIRST_WORD.match(statement)
    return _STATEMENT_POINTS.get(match.group(1).lower()) if match else None


class FaultInjector:
    """Rules that interfere with the engines this injector is attached to."""

    def __init__(self, *, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = random.Random(seed)
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._injected: list[Injection] = []

    # --- arming ----------------------------------------------------------------------

    def fail(
        self,
        point: Point,
        *,
        kind: Kind = "error",
        times: int | None = None,
        probability: float | None = None,
        for_seconds: float | None = None,
        after: bool = False,
    ) -> Rule:
        """Raise a ``kind`` fault at ``point``: ``times`` times, with ``probability``, for
        ``for_seconds`` (any combination; none of them means every time until `clear`).

        With ``after``, the statement or commit takes effect first and the fault is raised
        on its way back: the database did the work, the client never heard (not for connect).
        """
        _check(point, kind)
        if after and point == "connect":
            raise ValueError("after=True applies to statements and commits, not to connect")
        until = self._until(for_seconds)
        return self._arm(Rule(point, "fail", kind, times, probability, until, after=after))

    def delay(
        self,
        point: Point,
        seconds: float,
        *,
        times: int | None = None,
        probability: float | None = None,
        for_seconds: float | None = None,
    ) -> Rule:
        """Sleep ``seconds`` before ``point`` proceeds."""
        _check(point, "error")
        rule = Rule(point, "delay", "error", times, probability, self._until(for_seconds), seconds)
        return self._arm(rule)

    def before(
        self, point: Point, callback: Callable[[], object], *, times: int | None = 1
    ) -> Rule:
        """Run ``callback`` just before ``point`` (default: once). Its exceptions propagate."""
        _check(point, "error")
        return self._arm(Rule(point, "call", "error", times, callback=callback))

    def clear(self) -> None:
        """Disarm every rule: the database behaves again."""
        with self._lock:
            self._rules.clear()

    @property
    def injected(self) -> list[Injection]:
        """Every fault caused so far, in order."""
        with self._lock:
            return list(self._injected)

    def count(self, point: Point | None = None, action: Action | None = None) -> int:
        """How many faults were caused, at ``point`` and of ``action`` if given."""
        return sum(
            1
            for i in self.injected
            if (point is None or i.point == point) and (action is None or i.action == action)
        )

    def _until(self, seconds: float | None) -> float | None:
        return None if seconds is None else self._clock() + seconds

    def _arm(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    # --- attaching ------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Interfere with ``engine`` from now on. An engine can carry one injector."""
        if getattr(engine.dialect, "_llmgine_faults", None) is not None:
            raise ValueError("this engine already has a FaultInjector")
        dialect: Any = engine.dialect
        dialect._llmgine_faults = self
        dbapi = dialect.loaded_dbapi

        @event.listens_for(engine, "do_connect")
        def _on_connect(*_args: Any) -> None:
            self._interfere("connect", None, dbapi)

        @event.listens_for(engine, "before_cursor_execute")
        def _on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            point = statement_point(statement)
            if point is not None:
                self._interfere(point, statement, dbapi)

        @event.listens_for(engine, "after_cursor_execute")
        def _after_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            point = statement_point(statement)
            if point is not None:
                self._interfere(point, statement, dbapi, after=True)

        real_commit = dialect.do_commit

        def do_commit(dbapi_connection: Any) -> None:
            self._interfere("commit", None, dbapi)
            real_commit(dbapi_connection)
            self._interfere("commit", None, dbapi, after=True)

        dialect.do_commit = do_commit

        @event.listens_for(engine, "handle_error")
        def _on_error(context: Any) -> None:
            if getattr(context.original_exception, _DISCONNECT, False):
                context.is_disconnect = True

    def _interfere(
        self, point: Point, statement: str | None, dbapi: Any, *, after: bool = False
    ) -> None:
        now = self._clock()
        with self._lock:
            fired: list[Rule] = []
            failing = False  # one error per statement: a second failing rule waits its turn
            for rule in self._rules:
                if rule.point != point or rule.after != after:
                    continue
                if failing and rule.action == "fail":
                    continue
                if rule.due(now, self._rng):
                    fired.append(rule)
                    failing = failing or rule.action == "fail"
            for rule in fired:
                kind = rule.kind if rule.action == "fail" else None
                injection = Injection(point, rule.action, kind, statement, now, after)
                self._injected.append(injection)
        for rule in fired:
            if rule.action == "delay":
                time.sleep(rule.seconds)
            elif rule.action == "call" and rule.callback is not None:
                rule.callback()
        for rule in fired:
            if rule.action == "fail":
                raise self._error(rule.kind, point, dbapi)

    def _error(self, kind: Kind, point: Point, dbapi: Any) -> BaseException:
        errors = getattr(dbapi, "errors", None)  # psycopg's SQLSTATE classes
        message = f"injected by llmgine_conformance.faults at {point}"
        error: BaseException
        if kind == "disconnect":
            error = dbapi.OperationalError(f"server closed the connection unexpectedly ({message})")
            setattr(error, _DISCONNECT, True)  # read by handle_error, above
        elif kind == "disk_full":
            cls = getattr(errors, "DiskFull", dbapi.OperationalError)
            error = cls(f"database or disk is full: No space left on device ({message})")
        elif kind == "timeout":
            cls = getattr(errors, "QueryCanceled", dbapi.OperationalError)
            error = cls(f"canceling statement due to statement timeout ({message})")
        else:
            error = dbapi.OperationalError(f"I/O error ({message})")
        return error


def _check(point: str, kind: str) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; choose from {', '.join(POINTS)}")
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; choose from {', '.join(KINDS)}")
