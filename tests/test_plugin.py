"""The conformance plugin: backend selection, capability skips, the report, finding PostgreSQL."""

from __future__ import annotations

import socket
import textwrap
import threading
from pathlib import Path

import pytest

from llmgine_conformance.cli import pytest_arguments
from llmgine_conformance.plugin import _Tally, format_table, verdicts
from llmgine_conformance.postgres import PostgresServer, docker_available, find_postgres

pytest_plugins = ["pytester"]

PROBE = """
    from __future__ import annotations

    import pytest
    from llmgine_conformance.backends import RAW_ROWS

    CAPABILITY = "probe"


    def test_opens_a_store(backend):
        assert backend.open() is not None


    @pytest.mark.requires(RAW_ROWS)
    def test_needs_raw_rows(backend):
        pass
"""

FACTORY = """
    from llmgine_conformance.backends import StoreFactoryBackend
    from llmgine.database.memory import MemoryDatabase, MemoryStore


    def make(tmp_path):
        database = MemoryDatabase()
        return StoreFactoryBackend(lambda clock: MemoryStore(database, clock=clock), name="mine")


    class Leaky(StoreFactoryBackend):
        def leaked_connections(self):
            return 1


    def leaky(tmp_path):
        return Leaky(lambda clock: MemoryStore(clock=clock), name="leaky")

    not_callable = 3
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_probe=textwrap.dedent(PROBE), my_backend=textwrap.dedent(FACTORY))
    pytester.syspathinsert()
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "llmgine_conformance.plugin", "-q", *args)


def test_a_named_built_in_backend_is_the_only_one_run(suite: pytest.Pytester) -> None:
    result = run(suite, "--llmgine-backend", "memory")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*probe*2 passed*"])


def test_faulty_names_both_fault_injecting_backends(suite: pytest.Pytester) -> None:
    # Collected, not run: this holds with and without a PostgreSQL server configured.
    result = run(suite, "--llmgine-backend", "faulty", "-k", "opens", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*test_opens_a_store?faulty-sqlite?*", "*test_opens_a_store?faulty-postgres?*"]
    )


def test_an_unknown_backend_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = run(suite, "--llmgine-backend", "oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown llmgine backend 'oracle'*"])


def test_a_third_party_factory_is_loaded_by_module_and_name(suite: pytest.Pytester) -> None:
    result = run(suite, "--llmgine-store", "my_backend:make")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*mine does not declare raw_rows*"])


@pytest.mark.parametrize(
    "target", ["my_backend", "my_backend:missing", "nowhere:make", "my_backend:not_callable"]
)
def test_a_bad_factory_is_a_usage_error(suite: pytest.Pytester, target: str) -> None:
    assert run(suite, "--llmgine-store", target).ret == pytest.ExitCode.USAGE_ERROR


def test_a_database_url_is_tested_through_the_reference_store(suite: pytest.Pytester) -> None:
    url = f"sqlite:///{suite.path / 'app.db'}"
    result = run(suite, "--llmgine-url", url)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*url:{url}*"])


def test_leaked_connections_fail_the_test(suite: pytest.Pytester) -> None:
    result = run(suite, "--llmgine-store", "my_backend:leaky", "-k", "opens")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*1 pooled connections still checked out*"])


def test_an_unknown_capability_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requires("telepathy")
        def test_x(backend):
            pass
        """
    )
    result = run(pytester, "--llmgine-backend", "memory")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown capabilities*telepathy*"])


def test_missing_postgres_skips_with_the_reason(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGINE_TEST_POSTGRES_URL", raising=False)
    monkeypatch.delenv("LLMGINE_REQUIRE_POSTGRES", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = run(suite, "--llmgine-backend", "postgres", "-k", "opens")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*LLMGINE_TEST_POSTGRES_URL*Docker*"])


def test_required_postgres_fails_instead_of_skipping(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGINE_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setenv("LLMGINE_REQUIRE_POSTGRES", "1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = run(suite, "--llmgine-backend", "postgres", "-k", "opens")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*LLMGINE_REQUIRE_POSTGRES=1 forbids skipping*"])


def test_an_explicit_postgres_url_wins_without_asking_docker() -> None:
    def no_docker() -> tuple[bool, str]:
        raise AssertionError("docker must not be asked")

    server = find_postgres("postgresql://h/db", docker=no_docker)
    assert (server.url, server.source) == ("postgresql://h/db", "explicit URL")


def test_testcontainers_is_used_when_docker_answers() -> None:
    started = PostgresServer("postgresql+psycopg://test@localhost:5555/test", "testcontainers")
    server = find_postgres(None, docker=lambda: (True, "answers"), start=lambda: started)
    assert server is started


def test_without_url_or_docker_the_reason_says_what_to_do() -> None:
    server = find_postgres(None, docker=lambda: (False, "no Docker engine answers (refused)"))
    assert server.url is None
    assert "LLMGINE_TEST_POSTGRES_URL" in server.source
    assert "refused" in server.source


def test_docker_availability_explains_an_absent_engine() -> None:
    answers, why = docker_available({"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert not answers
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in why


def test_docker_availability_recognises_an_engine_that_answers(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        answers, why = docker_available({"DOCKER_HOST": f"unix://{path}"})
    finally:
        thread.join(5)
        server.close()
    assert answers, why


def test_docker_availability_rejects_an_unknown_scheme() -> None:
    assert docker_available({"DOCKER_HOST": "ssh://somewhere"})[0] is False


def test_the_table_has_a_row_per_capability_and_a_column_per_backend() -> None:
    results = {
        ("restart persistence", "sqlite"): _Tally(passed=5),
        ("restart persistence", "memory"): _Tally(passed=4, skipped=1, reasons={"no clock"}),
        ("poison rows", "memory"): _Tally(failed=1),
    }
    lines = format_table(results)
    header = next(line for line in lines if line.startswith("llmgine conformance"))
    assert header.index("memory") < header.index("sqlite")
    assert any(line.startswith("poison rows") and "1 failed" in line for line in lines)
    assert any("4 passed, 1 skipped" in line for line in lines)
    assert "  memory: no clock (restart persistence)" in lines


def test_the_command_defaults_to_the_configured_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_DB_URL", "sqlite:///x.db")
    args = pytest_arguments(["-x"])
    assert args[args.index("--llmgine-url") + 1] == "sqlite:///x.db"
    assert args[-1] == "-x"
    assert "--pyargs" in args


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--url", "postgresql://h/db"], ["--llmgine-url", "postgresql://h/db"]),
        (["--store", "pkg.mod:make"], ["--llmgine-store", "pkg.mod:make"]),
        (["--backend", "all"], ["--llmgine-backend", "all"]),
    ],
)
def test_the_command_passes_its_target_to_the_plugin(argv: list[str], expected: list[str]) -> None:
    args = pytest_arguments(argv)
    position = args.index(expected[0])
    assert args[position : position + 2] == expected


def test_the_verdict_counts_kept_broken_and_undeclared_promises() -> None:
    results = {
        ("restart persistence", "sqlite"): _Tally(passed=5, skipped=1),
        ("poison rows", "sqlite"): _Tally(passed=3, failed=1),
        ("crash safety", "sqlite"): _Tally(skipped=4, reasons={"no processes"}),
        ("scheduling", "sqlite"): _Tally(passed=2),
    }
    assert verdicts(results) == [
        "this backend keeps 2 of 3 promises; 1 not declared; broken: poison rows"
    ]


def test_the_run_ends_with_the_table_and_a_verdict(suite: pytest.Pytester) -> None:
    result = run(suite, "--llmgine-store", "my_backend:make")
    assert result.stdout.lines[-1] == "this backend keeps 1 of 1 promises; 0 not declared"
    result.stdout.fnmatch_lines(["llmgine conformance*store:my_backend:make*", "probe*"])
