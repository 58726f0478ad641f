"""The conformance suite catches broken stores: each flaw in `broken_stores` fails its capability.

Each broken store is run through the whole suite, as a third party's store
would be, and the run must fail with failures in the row of the capability
the flaw breaks. Its correct twin, run the same way, must pass: so the
failures come from the flaw, not from the way the suite is run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from example_backend.conformance_run import ConformanceRun, run_conformance

pytestmark = pytest.mark.slow

SLOW_TO_SHRINK = (
    "test_claim_returns_exactly_the_due_events_in_instant_order",
    "test_due_queries_ignore_the_process_time_zone",
    "test_any_scheduled_event_comes_back_identical",
)
"""Property tests on whose failures Hypothesis spends 10-30 s shrinking; their rows fail anyway."""
NOT_SLOW_TO_SHRINK = " and ".join(f"not {name}" for name in SLOW_TO_SHRINK)
NO_TIMEOUTS = "not writer and not bus and not outage"
"""With errors escaping untranslated, each writer, bus and outage test waits out a timeout."""


@dataclass(frozen=True)
class Flaw:
    factory: str
    """The broken store's factory in `broken_stores`."""
    breaks: tuple[str, ...]
    """The capabilities whose rows must show failures."""
    twin: str
    """The factory of a correct store of the same kind."""
    keywords: str | None = None
    """A ``-k`` expression: the suite modules of the capabilities the flaw breaks (the whole
    suite per flaw would take CI minutes and prove no more)."""

    def args(self) -> tuple[str, ...]:
        selection = ("-k", self.keywords) if self.keywords else ()
        return ("--tb=line", *selection)  # full tracebacks would triple the time


FLAWS = [
    pytest.param(
        Flaw("deletes_poison_rows", ("poison rows",), "memory_store", "test_poison_rows"),
        id="deletes-poison-rows",
    ),
    pytest.param(
        Flaw(
            "loses_utc_offset",
            ("datetime round-trips", "restart persistence"),
            "memory_store",
            f"(test_datetimes or test_restart) and {NOT_SLOW_TO_SHRINK}",
        ),
        id="loses-utc-offset",
    ),
    pytest.param(
        Flaw("hands_out_twice", ("concurrent instances",), "memory_store", "test_concurrency"),
        id="hands-out-twice",
    ),
    pytest.param(
        Flaw(
            "raises_raw_errors",
            ("injected failures",),
            "faulty_sqlite_store",
            f"test_failures and {NO_TIMEOUTS}",
        ),
        id="raises-raw-errors",
    ),
]


LEASES, RESTART, POISON, LOG = (
    "leases and fencing",
    "restart persistence",
    "poison rows",
    "event log",
)
MODULES = {
    LEASES: "test_leases",
    RESTART: "test_restart",
    POISON: "test_poison_rows",
    LOG: "test_event_log",
}
"""The suite module proving each store-contract capability: a clause flaw runs only the
modules of the capabilities it breaks (the whole set takes minutes per flaw)."""
CLAUSE_FLAWS: dict[str, tuple[str, ...]] = {
    "re_add_replaces_the_row": (LEASES, RESTART),
    "re_add_clears_the_claim": (LEASES,),
    "due_before_is_exclusive": (LEASES, RESTART),
    "limits_before_ordering": (LEASES, POISON),
    "ties_by_event_id": (LEASES,),
    "lease_ends_inclusive": (LEASES,),
    "claims_quarantined_rows": (POISON,),
    "renews_from_the_old_expiry": (LEASES,),
    "renew_never_shortens": (LEASES,),
    "renews_every_owner": (LEASES,),
    "renew_drops_expired_leases": (LEASES,),
    "releases_every_owner": (LEASES, RESTART),
    "release_counts_every_held_event": (LEASES,),
    "completes_unfenced": (LEASES, RESTART),
    "complete_counts_the_ids_given": (LEASES, RESTART),
    "take_all_ignores_leases": (LEASES, RESTART, POISON),
    "quarantined_newest_first": (POISON,),
    "append_duplicates": (LOG,),
    "until_is_inclusive": (LOG,),
    "since_is_exclusive": (LOG,),
    "limits_before_filtering": (LOG,),
    "ignores_the_class_filter": (LOG,),
    "naive_created_at": (LOG,),
    "purge_includes_the_cutoff": (LOG,),
    "purges_by_position": (LOG,),
    "trims_by_timestamp": (LOG,),
}
"""Memory stores breaking one clause of `llmgine.database.store` each -> the rows that must fail."""

FLAWS += [
    pytest.param(
        Flaw(factory, breaks, "memory_store", " or ".join(MODULES[b] for b in breaks)),
        id=factory.replace("_", "-"),
    )
    for factory, breaks in CLAUSE_FLAWS.items()
]
FLAWS.append(
    pytest.param(
        Flaw("purges_in_one_transaction", (LOG,), "faulty_sqlite_store", "test_event_log"),
        id="purges-in-one-transaction",
    )
)


def test_every_broken_store_is_run() -> None:
    import broken_stores

    run = {flaw.values[0].factory for flaw in FLAWS}  # type: ignore[union-attr]
    assert {broken_stores.snake_case(c.__name__) for c in broken_stores.MEMORY_FLAWS} <= run


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Flaw], ConformanceRun]:
    """``suite_run(factory, flaw)``: the suite run on ``broken_stores:factory`` with the flaw's
    arguments; each distinct run happens once per module."""
    done: dict[tuple[str, tuple[str, ...]], ConformanceRun] = {}

    def run(factory: str, flaw: Flaw) -> ConformanceRun:
        key = (factory, flaw.args())
        if key not in done:
            cwd = tmp_path_factory.mktemp(factory)
            done[key] = run_conformance(f"broken_stores:{factory}", *flaw.args(), cwd=cwd)
        return done[key]

    return run


@pytest.mark.parametrize("flaw", FLAWS)
def test_the_suite_fails_a_broken_store_in_the_capability_it_breaks(
    suite_run: Callable[[str, Flaw], ConformanceRun], flaw: Flaw
) -> None:
    run = suite_run(flaw.factory, flaw)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, (
        f"{flaw.factory}: expected failed tests, got exit status {run.returncode}\n{run.report()}"
    )
    for capability in flaw.breaks:
        assert run.counts(capability).get("failed", 0) > 0, (
            f"the suite did not catch {flaw.factory} in {capability!r}: "
            f"its row reads {run.table.get(capability)!r}\n{run.report()}"
        )


@pytest.mark.parametrize("flaw", FLAWS)
def test_the_correct_twin_passes_the_same_run(
    suite_run: Callable[[str, Flaw], ConformanceRun], flaw: Flaw
) -> None:
    run = suite_run(flaw.twin, flaw)
    assert run.returncode == pytest.ExitCode.OK, (
        f"{flaw.twin} (the correct twin of {flaw.factory}) failed:\n{run.report()}"
    )
    for capability in flaw.breaks:
        counts = run.counts(capability)
        assert counts.get("passed", 0) > 0, (
            f"{flaw.twin} passed nothing in {capability!r}: {run.table.get(capability)!r}"
        )
        assert "failed" not in counts, f"{flaw.twin} failed {capability!r}"
