"""What a backend author meets: the guide and a worked example ship with the suite, a
`StoreFactoryBackend` declares raw rows, processes and the environment through hooks, and a
factory that returns a store instead of a backend stops the run once, saying so."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from example_backend.conformance_run import run_conformance
from llmgine.database.memory import MemoryStore
from llmgine_conformance import example
from llmgine_conformance.backends import (
    ALL_CAPABILITIES,
    CLOCK,
    ENVIRONMENT,
    EVENT_LOG,
    PROCESSES,
    RAW_ROWS,
    RESTART,
    MemoryBackend,
    StoreFactoryBackend,
)
from llmgine_conformance.cli import main
from llmgine_conformance.faults import FaultInjector
from llmgine_conformance.postgres import find_postgres

pytest_plugins = ["pytester"]


def test_each_hook_declares_its_capability() -> None:
    backend = StoreFactoryBackend(
        lambda clock: MemoryStore(clock=clock),
        insert_raw=lambda **row: None,
        process_opener=MemoryStore,
        environment={"LLMGINE_DB_URL": "sqlite:///x.db"},
    )
    assert {RAW_ROWS, PROCESSES, ENVIRONMENT, EVENT_LOG} <= backend.capabilities
    assert backend.process_opener() is MemoryStore
    assert backend.environment() == {"LLMGINE_DB_URL": "sqlite:///x.db"}


def test_a_factory_backend_can_declare_every_capability(tmp_path: Path) -> None:
    other = MemoryBackend()
    injector = FaultInjector()
    backend = StoreFactoryBackend(
        lambda clock: MemoryStore(clock=clock),
        insert_raw=lambda **row: None,
        process_opener=MemoryStore,
        environment={},
        sibling=lambda: other,
        with_session_time_zone=lambda zone: other,
        terminate_connections=lambda: 3,
        faults=injector,
        foreign_objects=lambda: ["public.event_log"],
    )
    assert backend.capabilities == ALL_CAPABILITIES
    assert backend.sibling() is other
    assert backend.with_session_time_zone("Asia/Tokyo") is other
    assert backend.terminate_connections() == 3
    assert backend.faults is injector
    assert backend.foreign_objects() == ["public.event_log"]


@pytest.mark.parametrize("capability", sorted(ALL_CAPABILITIES - {RESTART, CLOCK, EVENT_LOG}))
def test_declaring_a_capability_without_its_hook_is_refused(capability: str) -> None:
    with pytest.raises(ValueError, match=f"declares {capability} without the hook"):
        StoreFactoryBackend(lambda clock: MemoryStore(clock=clock),
                            capabilities=frozenset({capability}))  # fmt: skip


def test_the_example_plants_raw_rows_that_its_stores_quarantine(tmp_path: Path) -> None:
    backend = example.make(tmp_path)
    try:
        backend.insert_raw(event_id="poison", event_class_name="NoSuchClass",
                           event_data="{}", due=datetime(2020, 1, 1, tzinfo=UTC))  # fmt: skip
        store = backend.open()
        assert store.take_all() == []
        assert [row.event_id for row in store.quarantined()] == ["poison"]
    finally:
        backend.close()


@pytest.mark.slow
def test_the_shipped_example_keeps_every_promise_it_declares(tmp_path: Path) -> None:
    # The modules that exercise the example's hooks (raw rows, processes, environment); the
    # whole suite on the same SQL store over SQLite runs in tests/test_wheel.py.
    modules = "test_poison_rows or test_crash or test_concurrency or test_config_changes"
    run = run_conformance(
        "llmgine_conformance.example:make", "-q", "-k", modules, cwd=tmp_path, timeout=600
    )
    assert run.returncode == 0, run.report()
    for capability in ("poison rows", "crash durability", "concurrent instances",
                       "config change detection"):  # fmt: skip
        assert run.counts(capability).get("passed", 0) > 0, run.report()


def test_the_guide_ships_with_the_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--guide"])
    assert exited.value.code == 0
    guide = capsys.readouterr().out
    assert "llmgine_conformance.example:make" in guide
    assert "tests/" not in guide  # nothing outside the installed package
    assert "StoreFactoryBackend" in guide


def test_a_factory_returning_a_store_stops_the_run_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        wrong=textwrap.dedent("""
            from llmgine.database.memory import MemoryStore

            def make(tmp_path):
                return MemoryStore()
        """),
        test_probe=textwrap.dedent("""
            CAPABILITY = "probe"

            def test_one(backend):
                pass

            def test_two(backend):
                pass
        """),
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        "-p", "llmgine_conformance.plugin", "-q", "--llmgine-store", "wrong:make"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)  # not one error per test
    said = [line for line in result.outlines if "the factory returned a MemoryStore" in line]
    assert said, result.outlines
    assert "StoreFactoryBackend(lambda clock: MyStore" in said[0]


def test_without_testcontainers_the_postgres_skip_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # not installed
    server = find_postgres(None, docker=lambda: (True, "a Docker engine answers"))
    assert server.url is None
    assert "pip install 'llmgine[containers]'" in server.source
