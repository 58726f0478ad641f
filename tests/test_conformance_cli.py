"""``llmgine-conformance`` checks its target first: a bad one ends the run in seconds, with one
line naming the problem (password hidden) and an exit status of its own.

Each test prints how long the command took (run pytest with ``-s`` to see it)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from llmgine_conformance.backends import postgres_required
from llmgine_conformance.preflight import (
    EXIT_BAD_CREDENTIALS,
    EXIT_BAD_URL,
    EXIT_MISSING_DATABASE,
    EXIT_UNREACHABLE,
)
from throwaway_postgres import free_port, throwaway_postgres, why_unavailable

SECRET = "hunter2"


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    command = [sys.executable, "-m", "llmgine_conformance.cli", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    print(f"llmgine-conformance {' '.join(args)}: exit {result.returncode} "
          f"after {time.monotonic() - started:.2f} s")  # fmt: skip
    return result


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llmgine-conformance: ")
    for word in words:
        assert word in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "collected" not in result.stdout  # stopped before pytest collected anything


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[int, str]]:
    reason = why_unavailable()
    if reason is not None:
        if postgres_required():
            pytest.fail(f"{reason} (LLMGINE_REQUIRE_POSTGRES=1 forbids skipping)")
        pytest.skip(reason)
    with throwaway_postgres() as server:
        yield server


def test_an_unknown_driver_fails_fast() -> None:
    result = conformance("--url", f"postgress://postgres:{SECRET}@127.0.0.1:5432/test")
    assert result.returncode == EXIT_BAD_URL
    assert_one_clear_line(result, "unknown database driver 'postgress'", ":***@")


def test_an_unparseable_url_fails_fast() -> None:
    result = conformance("--url", f"postgresql://u:{SECRET}@host:notaport/db")
    assert result.returncode == EXIT_BAD_URL
    assert_one_clear_line(result, "cannot parse")


def test_an_unreachable_port_fails_fast() -> None:
    port = free_port()
    result = conformance("--url", f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/test")
    assert result.returncode == EXIT_UNREACHABLE
    assert_one_clear_line(result, "unreachable", f"127.0.0.1:{port}", "refused")


def test_a_wrong_password_fails_fast(password_server: tuple[int, str]) -> None:
    port, _ = password_server
    result = conformance("--url", f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/postgres")
    assert result.returncode == EXIT_BAD_CREDENTIALS
    assert_one_clear_line(result, "bad credentials", "password authentication failed")


def test_a_password_in_the_query_is_hidden_too(password_server: tuple[int, str]) -> None:
    port, _ = password_server
    result = conformance(
        "--url", f"postgresql://postgres@127.0.0.1:{port}/postgres?password={SECRET}"
    )
    assert result.returncode == EXIT_BAD_CREDENTIALS
    assert_one_clear_line(result, "password=***")


def test_a_missing_database_fails_fast(password_server: tuple[int, str]) -> None:
    port, password = password_server
    result = conformance("--url", f"postgresql://postgres:{password}@127.0.0.1:{port}/nosuchdb")
    assert result.returncode == EXIT_MISSING_DATABASE
    assert_one_clear_line(result, "missing database", "nosuchdb")


def test_a_reachable_target_runs_the_suite(password_server: tuple[int, str]) -> None:
    port, password = password_server
    result = conformance(
        "--url", f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", "--collect-only"
    )
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "collected" in result.stdout


def test_help_documents_each_exit_status() -> None:
    result = conformance("--help")
    for code in (EXIT_BAD_URL, EXIT_MISSING_DATABASE, EXIT_UNREACHABLE, EXIT_BAD_CREDENTIALS):
        assert f"  {code}  " in result.stdout


def test_the_postgres_backends_check_their_server_first(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("LLMGINE_TEST_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{port}/t")
    result = conformance("--backend", "faulty")
    assert result.returncode == EXIT_UNREACHABLE
    assert_one_clear_line(result, "unreachable", f"127.0.0.1:{port}")
