"""The fault-injecting engine itself: when its rules fire, what they raise, what they record."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from llmgine.database.config import normalize_url
from llmgine_conformance.faults import KINDS, FaultInjector, Injection, Kind, statement_point


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def injector(clock: FakeClock) -> FaultInjector:
    return FaultInjector(seed=1, clock=clock)


def new_sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    execute(engine, "CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    return engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = new_sqlite_engine(tmp_path / "faults.db")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """An engine whose search_path is a schema of its own, holding table ``t``."""
    schema = f"llmgine_faults_{uuid.uuid4().hex[:12]}"
    url = normalize_url(postgres_url)
    admin = create_engine(url)
    execute(admin, f'CREATE SCHEMA "{schema}"')
    engine = create_engine(url, connect_args={"options": f"-c search_path={schema}"})
    execute(engine, "CREATE TABLE t (x INTEGER)")
    yield engine
    engine.dispose()
    execute(admin, f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each real engine in turn, with a table ``t (x INTEGER)``."""
    made: Engine = request.getfixturevalue(f"{request.param}_engine")
    return made


def execute(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def select_one(engine: Engine) -> object:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1")).scalar()


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())


def succeeds(call: Callable[[], object]) -> bool:
    try:
        call()
    except sa_exc.DBAPIError:
        return False
    return True


POSTGRES_ERRORS: dict[str, type[Exception]] = {
    "disk_full": psycopg.errors.DiskFull,
    "timeout": psycopg.errors.QueryCanceled,
}
"""psycopg's own subclasses of OperationalError for these kinds."""


def driver_error(engine: Engine) -> type[Exception]:
    return sqlite3.OperationalError if engine.dialect.name == "sqlite" else psycopg.OperationalError


# --- when rules fire -------------------------------------------------------------------------


def test_a_rule_fires_the_given_number_of_times(engine: Engine, injector: FaultInjector) -> None:
    injector.attach(engine)
    injector.fail("select", times=2)
    assert [succeeds(lambda: select_one(engine)) for _ in range(4)] == [False, False, True, True]
    assert injector.count("select") == 2


def test_a_rule_fires_only_inside_its_time_window(
    sqlite_engine: Engine, injector: FaultInjector, clock: FakeClock
) -> None:
    injector.attach(sqlite_engine)
    injector.fail("select", for_seconds=5.0)
    clock.now = 104.9
    assert not succeeds(lambda: select_one(sqlite_engine))
    clock.now = 105.1
    assert succeeds(lambda: select_one(sqlite_engine))
    assert injector.count() == 1


def test_a_rule_with_a_count_and_a_window_stops_at_whichever_ends_first(
    sqlite_engine: Engine, injector: FaultInjector, clock: FakeClock
) -> None:
    injector.attach(sqlite_engine)
    injector.fail("select", times=1, for_seconds=5.0)
    injector.fail("insert", times=10, for_seconds=5.0)
    assert not succeeds(lambda: select_one(sqlite_engine))
    assert succeeds(lambda: select_one(sqlite_engine))
    assert not succeeds(lambda: execute(sqlite_engine, "INSERT INTO t VALUES (1)"))
    clock.now = 106.0
    assert succeeds(lambda: execute(sqlite_engine, "INSERT INTO t VALUES (1)"))


def test_probability_zero_never_fires_and_one_always_fires(
    sqlite_engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(sqlite_engine)
    injector.fail("select", probability=0.0)
    injector.fail("insert", probability=1.0)
    assert all(succeeds(lambda: select_one(sqlite_engine)) for _ in range(20))
    assert not any(
        succeeds(lambda: execute(sqlite_engine, "INSERT INTO t VALUES (1)")) for _ in range(20)
    )


def firing_pattern(path: Path, seed: int) -> list[bool]:
    engine = new_sqlite_engine(path)
    try:
        injector = FaultInjector(seed=seed)
        injector.attach(engine)
        injector.fail("select", probability=0.5)
        return [succeeds(lambda: select_one(engine)) for _ in range(40)]
    finally:
        engine.dispose()


def test_a_seeded_probability_fires_in_the_same_pattern_for_the_same_seed(
    tmp_path: Path,
) -> None:
    pattern = firing_pattern(tmp_path / "a.db", seed=7)
    assert firing_pattern(tmp_path / "b.db", seed=7) == pattern
    assert firing_pattern(tmp_path / "c.db", seed=8) != pattern
    assert set(pattern) == {True, False}


def test_two_failing_rules_at_one_point_raise_one_fault_per_statement(
    sqlite_engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(sqlite_engine)
    injector.fail("select", times=1)
    injector.fail("select", kind="disconnect", times=1)
    with pytest.raises(sa_exc.DBAPIError) as first:
        select_one(sqlite_engine)
    with pytest.raises(sa_exc.DBAPIError) as second:
        select_one(sqlite_engine)
    assert select_one(sqlite_engine) == 1
    assert (first.value.connection_invalidated, second.value.connection_invalidated) == (
        False,
        True,
    )
    assert [i.kind for i in injector.injected] == ["error", "disconnect"]


def test_one_injector_interferes_with_every_engine_it_is_attached_to(
    tmp_path: Path, injector: FaultInjector
) -> None:
    engines = [new_sqlite_engine(tmp_path / f"{name}.db") for name in "ab"]
    try:
        for engine in engines:
            injector.attach(engine)
        injector.fail("select", times=2)
        assert [succeeds(lambda e=e: select_one(e)) for e in engines * 2] == [
            False,
            False,
            True,
            True,
        ]
    finally:
        for engine in engines:
            engine.dispose()


# --- what rules do ---------------------------------------------------------------------------


def test_a_delay_adds_latency_and_lets_the_statement_run(
    sqlite_engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(sqlite_engine)
    injector.delay("select", 0.1)
    started = time.monotonic()
    assert select_one(sqlite_engine) == 1
    assert time.monotonic() - started >= 0.1
    assert [(i.action, i.kind) for i in injector.injected] == [("delay", None)]


def test_before_runs_the_callback_just_before_the_statement(
    sqlite_engine: Engine, injector: FaultInjector, tmp_path: Path
) -> None:
    observer = create_engine(f"sqlite:///{tmp_path / 'faults.db'}")  # no injector on this one
    seen: list[int] = []
    injector.attach(sqlite_engine)
    injector.before("insert", lambda: seen.append(rows(observer)))
    try:
        execute(sqlite_engine, "INSERT INTO t VALUES (1)")
        execute(sqlite_engine, "INSERT INTO t VALUES (2)")
    finally:
        observer.dispose()
    assert seen == [0], "once, before the first insert"
    assert rows(sqlite_engine) == 2


def test_an_exception_from_a_callback_propagates_as_it_is(
    sqlite_engine: Engine, injector: FaultInjector
) -> None:
    def explode() -> None:
        raise RuntimeError("from the callback")

    injector.attach(sqlite_engine)
    injector.before("select", explode)
    with pytest.raises(RuntimeError, match="from the callback"):
        select_one(sqlite_engine)
    assert select_one(sqlite_engine) == 1


def test_clear_disarms_every_rule(sqlite_engine: Engine, injector: FaultInjector) -> None:
    injector.attach(sqlite_engine)
    injector.fail("select")
    injector.fail("commit")
    injector.delay("insert", 10.0)
    injector.clear()
    execute(sqlite_engine, "INSERT INTO t VALUES (1)")
    assert select_one(sqlite_engine) == 1
    assert injector.injected == []


# --- what faults raise -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_is_the_drivers_own_error_wrapped_by_sqlalchemy(
    engine: Engine, injector: FaultInjector, kind: Kind
) -> None:
    injector.attach(engine)
    injector.fail("select", kind=kind, times=1)
    with pytest.raises(sa_exc.OperationalError) as info:
        select_one(engine)
    if engine.dialect.name == "sqlite":
        assert type(info.value.orig) is sqlite3.OperationalError
    else:
        assert type(info.value.orig) is POSTGRES_ERRORS.get(kind, psycopg.OperationalError)
    assert info.value.connection_invalidated == (kind == "disconnect")


def test_a_disconnect_invalidates_the_connection_and_the_next_use_reconnects(
    engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(engine)
    with engine.connect() as conn:
        dropped = conn.connection.dbapi_connection
        injector.fail("select", kind="disconnect", times=1)
        with pytest.raises(sa_exc.DBAPIError) as info:
            conn.execute(text("SELECT 1"))
        assert info.value.connection_invalidated
        assert conn.invalidated
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        assert conn.connection.dbapi_connection is not dropped


def test_an_error_that_is_not_a_disconnect_keeps_the_connection(
    engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(engine)
    with engine.connect() as conn:
        kept = conn.connection.dbapi_connection
        injector.fail("select", times=1)
        with pytest.raises(sa_exc.DBAPIError) as info:
            conn.execute(text("SELECT 1"))
        assert not info.value.connection_invalidated
        conn.rollback()
        assert conn.execute(text("SELECT 1")).scalar() == 1
        assert conn.connection.dbapi_connection is kept


def test_a_connect_fault_fires_when_a_connection_is_opened(
    engine: Engine, injector: FaultInjector
) -> None:
    engine.dispose()  # no pooled connection left: the next use connects
    injector.attach(engine)
    injector.fail("connect", times=1)
    with pytest.raises(sa_exc.OperationalError) as info:
        engine.connect()
    assert isinstance(info.value.orig, driver_error(engine))
    assert select_one(engine) == 1
    assert injector.count("connect") == 1


def test_a_ddl_fault_fires_at_create(engine: Engine, injector: FaultInjector) -> None:
    injector.attach(engine)
    injector.fail("ddl", times=1)
    with pytest.raises(sa_exc.OperationalError):
        execute(engine, "CREATE TABLE u (y INTEGER)")
    execute(engine, "CREATE TABLE u (y INTEGER)")
    assert injector.count("ddl") == 1


def test_a_commit_fault_strikes_before_the_commit_so_nothing_is_committed(
    engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(engine)
    injector.fail("commit", times=1)
    with pytest.raises(sa_exc.OperationalError) as info:
        execute(engine, "INSERT INTO t VALUES (1)")
    assert isinstance(info.value.orig, driver_error(engine))
    assert rows(engine) == 0
    execute(engine, "INSERT INTO t VALUES (1)")
    assert rows(engine) == 1


def test_a_fault_after_the_commit_leaves_the_work_committed(
    engine: Engine, injector: FaultInjector
) -> None:
    injector.attach(engine)
    injector.fail("commit", kind="disconnect", times=1, after=True)
    with pytest.raises(sa_exc.OperationalError) as info:
        execute(engine, "INSERT INTO t VALUES (1)")
    assert info.value.connection_invalidated
    assert rows(engine) == 1
    assert [(i.point, i.after) for i in injector.injected] == [("commit", True)]


def test_a_fault_after_a_statement_strikes_once_it_ran(
    postgres_engine: Engine, injector: FaultInjector
) -> None:
    execute(postgres_engine, "CREATE SEQUENCE s")  # sequences ignore rollbacks
    injector.attach(postgres_engine)
    injector.fail("select", times=1, after=True)
    with pytest.raises(sa_exc.OperationalError):
        execute(postgres_engine, "SELECT nextval('s')")
    with postgres_engine.connect() as conn:
        assert conn.execute(text("SELECT nextval('s')")).scalar() == 2


# --- arming and attaching --------------------------------------------------------------------


@pytest.mark.parametrize(
    "arm",
    [
        lambda i: i.fail("merge"),
        lambda i: i.fail("select", kind="meteor"),
        lambda i: i.delay("vacuum", 1.0),
        lambda i: i.before("truncate", lambda: None),
        lambda i: i.fail("connect", after=True),
    ],
    ids=["point", "kind", "delay-point", "before-point", "after-connect"],
)
def test_unknown_points_and_kinds_are_rejected(
    injector: FaultInjector, arm: Callable[[FaultInjector], object]
) -> None:
    with pytest.raises(ValueError, match=r"point|kind|connect"):
        arm(injector)


def test_an_engine_carries_one_injector(sqlite_engine: Engine, injector: FaultInjector) -> None:
    injector.attach(sqlite_engine)
    with pytest.raises(ValueError, match="already"):
        injector.attach(sqlite_engine)
    with pytest.raises(ValueError, match="already"):
        FaultInjector().attach(sqlite_engine)


@pytest.mark.parametrize(
    ("statement", "point"),
    [
        ("SELECT 1", "select"),
        ("  \n\tselect x from t", "select"),
        ("-- a note\nINSERT INTO t VALUES (1)", "insert"),
        ("/* a hint */ UPDATE t SET x = 1", "update"),
        ("/* one */ -- two\n  DELETE FROM t", "delete"),
        ("WITH c AS (SELECT 1) SELECT * FROM c", "select"),
        ("(SELECT 1) UNION (SELECT 2)", "select"),
        ("PRAGMA main.table_info(t)", "select"),
        ("SHOW search_path", "select"),
        ("CREATE TABLE t (x INTEGER)", "ddl"),
        ("alter table t add column y integer", "ddl"),
        ("DROP INDEX ix_t", "ddl"),
        ("BEGIN IMMEDIATE", None),
        ("SAVEPOINT sa_savepoint_1", None),
        ("ROLLBACK", None),
        ("-- only a comment", None),
        ("", None),
    ],
)
def test_statement_point_classifies_statements(statement: str, point: str | None) -> None:
    assert statement_point(statement) == point


# --- what is recorded ------------------------------------------------------------------------


def test_each_injection_records_point_action_kind_statement_and_time(
    sqlite_engine: Engine, injector: FaultInjector, clock: FakeClock
) -> None:
    injector.attach(sqlite_engine)
    injector.fail("insert", kind="timeout", times=1)
    injector.delay("select", 0.0, times=1)
    injector.before("update", lambda: None)
    injector.fail("commit", times=1)
    clock.now = 200.0
    assert not succeeds(lambda: execute(sqlite_engine, "INSERT INTO t VALUES (1)"))
    assert select_one(sqlite_engine) == 1
    assert not succeeds(lambda: execute(sqlite_engine, "UPDATE t SET x = 2"))
    assert injector.injected == [
        Injection("insert", "fail", "timeout", "INSERT INTO t VALUES (1)", 200.0),
        Injection("select", "delay", None, "SELECT 1", 200.0),
        Injection("update", "call", None, "UPDATE t SET x = 2", 200.0),
        Injection("commit", "fail", "error", None, 200.0),
    ]
    assert (injector.count(), injector.count("select"), injector.count(action="fail")) == (4, 1, 2)
