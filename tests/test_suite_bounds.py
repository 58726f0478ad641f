"""Every suite test that loops or waits is bounded, and the run answers Ctrl-C: a store that
pages for ever, claims for ever or never returns fails its test; it does not stop the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from example_backend.conformance_run import TESTS, command, run_conformance
from stuck_stores import HUNG_MARKER

pytestmark = pytest.mark.slow


def test_a_read_that_ignores_after_id_fails_the_paging_test(tmp_path: Path) -> None:
    run = run_conformance("stuck_stores:ignores_after_id", "-k", "test_log_pages_with_after_id "
                          "or test_read_pages_through_any_filter", cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert run.returncode == 1, run.report()
    assert run.counts("payload fidelity") == {"failed": 1}, run.report()
    assert run.counts("event log").get("failed", 0) > 0, run.report()


def test_a_claim_that_never_runs_dry_fails_the_claim_test(tmp_path: Path) -> None:
    run = run_conformance("stuck_stores:claims_forever", "-k",
                          "test_concurrent_claims_never_return_the_same_event",
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert run.returncode == 1, run.report()
    assert "claim kept returning events" in run.output, run.report()


def test_a_hung_store_call_fails_its_test_after_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    run = run_conformance("stuck_stores:hangs_on_claim", "--llmgine-timeout", "3", "-k",
                          "test_concurrent_claims_never_return_the_same_event or "
                          "test_log_pages_with_after_id", cwd=tmp_path, timeout=120)  # fmt: skip
    assert run.returncode == 1, run.report()
    assert "timed out after 3 s (--llmgine-timeout)" in run.output, run.report()
    assert run.counts("payload fidelity") == {"passed": 1}, run.report()  # the run went on
    assert "not waiting for 4 thread(s) still running" in run.output, run.report()
    assert time.monotonic() - started < 60


def test_ctrl_c_stops_a_run_stuck_in_a_store_call(tmp_path: Path) -> None:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [*command(), "--store", "stuck_stores:hangs_on_claim", "--llmgine-timeout", "0",
         "-k", "test_concurrent_claims_never_return_the_same_event"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / HUNG_MARKER).exists():
            assert time.monotonic() < deadline, "the store call never started"
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 2, output  # pytest's "interrupted"
    assert "KeyboardInterrupt" in output
