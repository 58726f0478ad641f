"""The worked example: a third party's store (`example_backend`) passes the conformance suite.

The suite is run exactly as a third party runs it, with the
``llmgine-conformance --store example_backend.backend:make`` command in a
subprocess; the table it prints must show every capability the backend
declares passing and every other one skipped, saying why.
"""

from __future__ import annotations

import pytest

from example_backend.conformance_run import ConformanceRun, run_conformance

pytestmark = pytest.mark.slow

PASSING = [
    "restart persistence",
    "datetime round-trips",
    "payload fidelity",
    "poison rows",
    "concurrent instances",
    "durable scheduling",
    "crash durability",
]
"""Capabilities the file backend's declarations (RESTART, CLOCK, RAW_ROWS, EVENT_LOG,
PROCESSES) let the suite check."""
SKIPPED = {
    "namespace isolation": "namespaces",
    "config change detection": "environment",
    "injected failures": "faults",
}
"""Capabilities resting on declarations the file backend does not make, and one of them."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ConformanceRun:
    cwd = tmp_path_factory.mktemp("file-store")
    return run_conformance("example_backend.backend:make", cwd=cwd)


def test_the_file_store_passes_the_whole_suite(run: ConformanceRun) -> None:
    assert run.returncode == pytest.ExitCode.OK, run.report()


@pytest.mark.parametrize("capability", PASSING)
def test_a_declared_capability_passes(run: ConformanceRun, capability: str) -> None:
    counts = run.counts(capability)
    assert counts.get("passed", 0) > 0, f"{capability!r}: {run.table.get(capability)!r}"
    assert "failed" not in counts, f"{capability!r}: {run.table.get(capability)!r}"


@pytest.mark.parametrize(("capability", "missing"), SKIPPED.items())
def test_an_undeclared_capability_is_skipped_saying_why(
    run: ConformanceRun, capability: str, missing: str
) -> None:
    assert set(run.counts(capability)) == {"skipped"}, run.table.get(capability)
    reason = f": file does not declare {missing} ("
    said = [line for line in run.output.splitlines() if reason in line]
    assert len(said) == 1, f"skip reason {reason!r} not said once in:\n{run.report()}"
    assert capability in said[0].rsplit("(", 1)[1], said[0]
