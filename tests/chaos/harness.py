"""Chaos scenarios: N buses in processes of their own, one fault, every event accounted for.

Each bus is a `llmgine_conformance._bus_worker` process on a throwaway
PostgreSQL (`throwaway_postgres.ThrowawayPostgres`). The publishing buses publish their share of
the events, due over ``spread`` seconds; in the middle of that window the
scenario's fault strikes. The run then waits until every acknowledged event
was delivered (or a deadline passed), stops every bus cleanly and reads what
is left in the database. Counted:

- **lost**: acknowledged, never delivered, and gone from the database;
- **stranded**: acknowledged, not delivered by the deadline, still stored;
- **duplicated**: deliveries beyond the first, over all buses;
- **self-duplicated**: an event delivered twice by one bus (never allowed);
- **early**: a delivery reported before the event's due instant (on this
  process's clock, which the faults do not touch).
"""

from __future__ import annotations

import functools
import pickle
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmgine.database.config import PoolSettings
from llmgine.database.sqlstore import SQLAlchemyStore
from llmgine_conformance._processes import BusProcess
from throwaway_postgres import ThrowawayPostgres

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SCHEMA = "chaos"


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str = "none"
    """none, postgres-restart, freeze, clock-ahead, clock-behind."""
    buses: int = 3
    events: int = 3000
    """In all, shared by the publishing buses."""
    max_connections: int = 100
    lease_s: float = 4.0
    spread_s: float = 20.0
    due_in_s: float = 3.0
    pool: PoolSettings | None = None
    """Each bus's connection pool (None: the default, 2 kept and 3 more when busy)."""


@dataclass
class Result:
    scenario: str
    acked: int = 0
    delivered: int = 0
    lost: int = 0
    stranded: int = 0
    duplicated: int = 0
    self_duplicated: int = 0
    early: int = 0
    unexplained_duplicates: int = 0
    """Duplicated events first delivered after the fault ended (plus one lease): none may be,
    since a duplicate is allowed only for an event in flight when the fault struck."""
    publish_p99_s: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.scenario:<22} acked {self.acked:>5}  delivered {self.delivered:>5}  "
            f"lost {self.lost}  stranded {self.stranded}  duplicated {self.duplicated} "
            f"(self {self.self_duplicated}, unexplained {self.unexplained_duplicates})  "
            f"early {self.early}  "
            f"p99 publish {self.publish_p99_s:.3f} s  {self.seconds:.0f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("no-fault"),
        Scenario("postgres-restart", fault="postgres-restart"),
        Scenario("frozen-bus", fault="freeze"),
        Scenario("clock-ahead", fault="clock-ahead"),
        Scenario("clock-behind", fault="clock-behind"),
        # What a user sharing a small server does: one connection per bus.
        Scenario(
            "20-buses-20-connections",
            buses=20,
            max_connections=20,
            pool=PoolSettings(size=1, max_overflow=0),
        ),
    )
}


def _skew_env(scenario: Scenario) -> dict[str, str]:
    offset = {"clock-ahead": "+45s", "clock-behind": "-45s"}[scenario.fault]
    if not FAKETIME_LIB.exists():
        raise RuntimeError(f"{scenario.name} needs libfaketime (apt-get install faketime)")
    return {
        "LD_PRELOAD": str(FAKETIME_LIB),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


def run(scenario: Scenario, *, log: Callable[[str], None] = print) -> Result:
    """Run ``scenario`` on a throwaway PostgreSQL; return its counts."""
    result = Result(scenario.name)
    began = time.monotonic()
    with (
        ThrowawayPostgres(max_connections=scenario.max_connections) as server,
        tempfile.TemporaryDirectory(prefix="llmgine-chaos-") as scratch,
    ):
        opener = Path(scratch) / "opener.pickle"
        opener.write_bytes(_pickled_opener(server.url, scenario.pool))
        setup = SQLAlchemyStore.from_url(server.url, schema=SCHEMA)
        setup.setup()  # the tables exist before the buses race to create them
        setup.close()
        skewed = scenario.fault in ("clock-ahead", "clock-behind")
        publishers = scenario.buses - 1 if skewed else scenario.buses
        share = scenario.events // publishers
        buses: list[BusProcess] = []
        try:
            for index in range(scenario.buses):
                special = index == scenario.buses - 1 and skewed
                env = _skew_env(scenario) if special else {}
                buses.append(
                    BusProcess(
                        opener,
                        f"bus{index}",
                        env,
                        publish=0 if special else share,
                        due_in=scenario.due_in_s,
                        spread=scenario.spread_s,
                        lease=scenario.lease_s,
                        horizon=scenario.lease_s * 2,
                        poll=0.2,
                    )
                )
            for bus in buses:
                bus.wait_started()
            fault_ended = _fault(scenario, server, buses, log)
            _settle(scenario, buses, result)
        finally:
            for bus in buses:
                try:
                    bus.stop(timeout=60)
                except Exception as exc:  # a bus that cannot stop is killed, and said so
                    result.notes.append(f"{bus.name} did not stop: {exc!r}")
                bus.close()
        _count(scenario, server.url, buses, result, fault_ended)
    result.seconds = time.monotonic() - began
    return result


def _pickled_opener(url: str, pool: PoolSettings | None) -> bytes:
    opener = functools.partial(SQLAlchemyStore.from_url, url, schema=SCHEMA, pool=pool)
    return pickle.dumps(opener)


def _fault(
    scenario: Scenario,
    server: ThrowawayPostgres,
    buses: list[BusProcess],
    log: Callable[[str], None],
) -> float:
    """Strike in the middle of the due window; return when the fault ended (POSIX time)."""
    if scenario.fault not in ("postgres-restart", "freeze"):
        return time.time()
    time.sleep(scenario.due_in_s + scenario.spread_s / 2)
    if scenario.fault == "postgres-restart":
        log(f"{scenario.name}: crashing PostgreSQL for 3 s")
        server.restart(down_s=3.0)
    else:
        frozen = buses[0]
        log(f"{scenario.name}: SIGSTOP {frozen.name} for {scenario.lease_s * 2.5:.0f} s")
        frozen.signal(signal.SIGSTOP)
        time.sleep(scenario.lease_s * 2.5)
        frozen.signal(signal.SIGCONT)
    return time.time()


def _all_acked(buses: list[BusProcess]) -> set[str]:
    return set().union(*(bus.acks for bus in buses))


def _settle(scenario: Scenario, buses: list[BusProcess], result: Result) -> None:
    """Wait until the publishers are done and every acknowledged event was delivered."""
    deadline = time.monotonic() + scenario.due_in_s + scenario.spread_s + scenario.lease_s * 6 + 60

    def done() -> bool:
        finished = all(bus.reports("published") for bus in buses)
        delivered = {e for bus in buses for e in bus.deliveries}
        return finished and _all_acked(buses) <= delivered

    while not done() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(scenario.lease_s)  # a late duplicate would show up now


def _count(
    scenario: Scenario, url: str, buses: list[BusProcess], result: Result, fault_ended: float
) -> None:
    acked = _all_acked(buses)
    counts: Counter[str] = Counter()
    for bus in buses:
        mine = Counter(bus.deliveries)
        counts.update(mine)
        result.self_duplicated += sum(n - 1 for n in mine.values() if n > 1)
    store = SQLAlchemyStore.from_url(url, schema=SCHEMA)
    try:
        remaining = {event.event_id for event in store.take_all()}
        remaining |= {row.event_id for row in store.quarantined()}
    finally:
        store.close()
    result.acked = len(acked)
    result.delivered = len(set(counts) & acked)
    result.lost = len(acked - set(counts) - remaining)
    result.stranded = len((acked - set(counts)) & remaining)
    result.duplicated = sum(n - 1 for n in counts.values() if n > 1)
    due = {r["ack"]: r["due"] for bus in buses for r in bus.reports("ack")}
    result.early = sum(
        1
        for bus in buses
        for r in bus.reports("delivered")
        if r["delivered"] in due and r["received"] < due[r["delivered"]]
    )
    first: dict[str, float] = {}
    for bus in buses:
        for r in bus.reports("delivered"):
            first[r["delivered"]] = min(first.get(r["delivered"], r["received"]), r["received"])
    result.unexplained_duplicates = sum(
        1
        for event_id, n in counts.items()
        if n > 1 and first[event_id] > fault_ended + scenario.lease_s
    )
    took = [r["took"] for bus in buses for r in bus.reports("ack")]
    if len(took) >= 2:
        result.publish_p99_s = statistics.quantiles(took, n=100)[98]
