"""What a person reads at the end of a suite run: each test counted once in the table, each
skip reason said once per backend."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from example_backend.conformance_run import command
from llmgine_conformance.cli import parse

pytest_plugins = ["pytester"]

PROBE = """
    from __future__ import annotations

    import pytest
    from llmgine_conformance.backends import FAULTS, RAW_ROWS

    CAPABILITY = "probe"


    @pytest.fixture
    def breaks_at_teardown(backend):
        yield
        raise RuntimeError("teardown broke too")


    def test_fails_and_errs_at_teardown(breaks_at_teardown):
        assert False


    def test_passes(backend):
        pass


    @pytest.mark.requires(RAW_ROWS)
    def test_needs_raw_rows(backend):
        pass


    @pytest.mark.requires(FAULTS)
    def test_needs_faults(backend):
        pass


    @pytest.mark.requires(FAULTS)
    def test_needs_faults_too(backend):
        pass
"""

FACTORY = """
    from llmgine_conformance.backends import StoreFactoryBackend
    from llmgine.database.memory import MemoryStore


    def make(tmp_path):
        return StoreFactoryBackend(lambda clock: MemoryStore(clock=clock), name="mine")
"""


@pytest.fixture
def result(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_probe=textwrap.dedent(PROBE), my_backend=textwrap.dedent(FACTORY))
    pytester.syspathinsert()
    return pytester.runpytest_subprocess(
        "-p", "llmgine_conformance.plugin", "-q", "--llmgine-store", "my_backend:make"
    )


def test_a_test_that_fails_and_errs_at_teardown_counts_once(result: pytest.RunResult) -> None:
    result.stdout.fnmatch_lines(["probe*1 passed, 1 failed, 3 skipped*"])


def test_each_skip_reason_is_said_once_per_backend(result: pytest.RunResult) -> None:
    reasons = result.stdout.lines[result.stdout.lines.index("skipped because:") + 1 :]
    said = [line for line in reasons if line.startswith("  store:my_backend:make: ")]
    assert said == [
        "  store:my_backend:make: mine does not declare faults (probe)",
        "  store:my_backend:make: mine does not declare raw_rows (probe)",
    ]


def test_the_commands_help_shows_the_postgres_url_option_without_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--llmgine-postgres-url URL" in text
    assert "--llmgine-timeout SECONDS" in text
    assert "``" not in text


def test_the_postgres_url_option_is_checked_first_and_passed_on() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/elsewhere"
    invocation = parse(["--backend", "postgres", "--llmgine-postgres-url", url])
    assert invocation.url == url  # the target check connects to it before collecting
    position = invocation.pytest_args.index("--llmgine-postgres-url")
    assert invocation.pytest_args[position + 1] == url


@pytest.mark.slow
def test_a_run_on_the_default_database_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LLMGINE_")}
    result = subprocess.run(
        [*command(), "-k", "test_log_pages_with_after_id or test_any_scheduled_event_comes"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "url:sqlite:///./message_bus.db" in result.stdout  # it ran on the default database
    assert list(tmp_path.iterdir()) == []  # no empty message_bus.db, no .hypothesis/
