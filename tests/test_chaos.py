"""Chaos in CI: three buses in processes of their own, PostgreSQL crashed and restarted mid-run.

The whole set of scenarios (frozen bus, clock skew, connection starvation,
3,000 events each) is ``make chaos``; this is the PostgreSQL restart, small
enough for every CI run. It starts its own throwaway server (`throwaway_postgres`):
the shared one is never stopped.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from chaos.harness import SCENARIOS, run
from throwaway_postgres import why_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_postgres_restart_mid_run_loses_and_strands_nothing() -> None:
    reason = why_unavailable()
    if reason is not None:
        if os.environ.get("LLMGINE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LLMGINE_REQUIRE_POSTGRES=1 but no throwaway PostgreSQL: {reason}")
        pytest.skip(f"needs a throwaway PostgreSQL: {reason}")
    scenario = SCENARIOS["postgres-restart"]
    result = run(dataclasses.replace(scenario, events=300, spread_s=12.0))
    print(result.line())  # the figures, in the test's report

    assert result.acked == 300
    assert result.lost == 0
    assert result.stranded == 0
    assert result.self_duplicated == 0
    assert result.early == 0
    # Duplicates are allowed only for events in flight at the outage (delivered, completion
    # not committed, lease expired meanwhile): none first delivered after it.
    assert result.unexplained_duplicates == 0
