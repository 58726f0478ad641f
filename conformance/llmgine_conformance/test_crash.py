"""Crash durability: buses in real processes, killed with SIGKILL, lose no acknowledged event.

An event is *acknowledged* when `publish` returned for it. Delivery is
at-least-once: an event being handled when its bus dies may be delivered
again, with the same ``event_id``, by the bus that takes over once the dead
bus's lease expires. ``LLMGINE_KILL_ROUNDS`` sets how many publishers the
first test kills (default 20).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmgine_conformance._processes import BusProcess, delivery_counts, write_opener
from llmgine_conformance.backends import PROCESSES, Backend

CAPABILITY = "crash durability"
KILL_ROUNDS = int(os.environ.get("LLMGINE_KILL_ROUNDS", "20"))
AT_ONCE = 5
PER_PUBLISHER = 200
LEASE_S = 1.0
TAKEOVER_TIMEOUT_S = 90.0

pytestmark = pytest.mark.requires(PROCESSES)


@pytest.fixture
def opener(backend: Backend, tmp_path: Path) -> Path:
    return write_opener(backend, tmp_path)


@pytest.fixture
def processes() -> Iterator[list[BusProcess]]:
    started: list[BusProcess] = []
    yield started
    for process in started:
        process.close()


@pytest.fixture
def rng() -> random.Random:
    seed = random.randrange(2**32)
    print(f"random seed {seed}")  # shown with a failure, to replay it
    return random.Random(seed)


def start(processes: list[BusProcess], opener: Path, name: str, **options: float) -> BusProcess:
    process = BusProcess(opener, name, lease=LEASE_S, **options)
    processes.append(process)
    return process


def test_kill_9_at_random_moments_loses_no_acknowledged_event(
    opener: Path, processes: list[BusProcess], rng: random.Random
) -> None:
    publishers: list[BusProcess] = []
    for wave in range(-(-KILL_ROUNDS // AT_ONCE)):
        batch = [
            start(processes, opener, f"w{wave}p{i}", publish=PER_PUBLISHER, due_in=4, spread=1)
            for i in range(min(AT_ONCE, KILL_ROUNDS - wave * AT_ONCE))
        ]
        for publisher in batch:
            publisher.wait_started()
        for publisher in batch:  # mostly while it publishes, sometimes before or after
            time.sleep(rng.uniform(0.0, 0.3))
            publisher.kill()
        publishers += batch
    acknowledged = set().union(*(p.acks for p in publishers))
    survivor = start(processes, opener, "survivor")
    survivor.wait_started()
    survivor.wait_until(lambda: acknowledged <= set(delivery_counts(processes)), TAKEOVER_TIMEOUT_S)
    assert survivor.stop() == 0
    delivered = delivery_counts(processes)
    lost = acknowledged - set(delivered)
    assert not lost, (
        f"{len(lost)} of {len(acknowledged)} acknowledged events lost: {sorted(lost)[:10]}"
    )
    published = {f"{p.name}-{i}" for p in publishers for i in range(PER_PUBLISHER)}
    assert set(delivered) <= published, "a delivery carried an id that was never published"
    assert acknowledged, "no publisher lived long enough to acknowledge anything"


def test_three_instances_lose_nothing_and_repeat_only_what_the_dead_one_was_handling(
    opener: Path, processes: list[BusProcess], rng: random.Random
) -> None:
    instances = [
        start(processes, opener, f"i{k}", publish=40, due_in=0.3, spread=1.5) for k in range(3)
    ]
    for instance in instances:
        instance.wait_started()
    time.sleep(rng.uniform(0.2, 1.2))
    victim = rng.choice(instances)
    victim.kill()
    survivors = [i for i in instances if i is not victim]
    acknowledged = set().union(*(i.acks for i in instances))
    survivors[0].wait_until(
        lambda: acknowledged <= set(delivery_counts(instances)), TAKEOVER_TIMEOUT_S
    )
    time.sleep(2 * LEASE_S)  # room for a wrong second delivery to show itself
    for survivor in survivors:
        assert survivor.stop() == 0
    delivered = delivery_counts(instances)
    assert not acknowledged - set(delivered), "acknowledged events were lost"
    for event_id, times in delivered.items():
        by_survivors = sum(s.deliveries.count(event_id) for s in survivors)
        by_victim = victim.deliveries.count(event_id)
        assert by_survivors <= 1, f"{event_id} delivered {by_survivors} times by live instances"
        assert by_victim <= 1, f"{event_id} delivered {by_victim} times by the killed instance"
        assert times <= 2, f"{event_id} delivered {times} times"
