"""A bus in a process of its own, for the crash tests: it reports what it acknowledges and delivers.

    python -m llmgine_conformance._bus_worker OPENER NAME [options]

OPENER is a file holding a pickled zero-argument callable that opens a store
(`Backend.process_opener`). The worker starts a `MessageBus` on that store,
publishes ``--publish`` scheduled events (ids ``NAME-0``, ``NAME-1``...), due
from ``--due-in`` seconds on, spread over ``--spread`` seconds, and writes one
JSON object per line to stdout, flushed at once:

    {"started": NAME}              the bus has started
    {"ack": ID, "due": T, "took": S} publish() returned for ID (due at POSIX time T, after S
                                   seconds): it is durable now
    {"published": N}               all N publishes returned
    {"delivered": ID, "by": NAME}  a handler received ID
    {"stopped": NAME}              the bus stopped cleanly

It stops when a line ``stop`` (or end of file) arrives on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from llmgine.bus.bus import MessageBus
from llmgine.messages.scheduled_events import ScheduledEvent


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    loop.call_soon_threadsafe(stop.set)


async def run(args: argparse.Namespace, opener: Callable[[], Any]) -> None:
    store = opener()
    bus = MessageBus(
        store=store,
        lease=timedelta(seconds=args.lease),
        horizon=timedelta(seconds=args.horizon),
        poll_interval=args.poll,
        publish_timeout=args.publish_timeout,
    )
    bus.register_event_handler(
        ScheduledEvent, lambda event: emit(delivered=event.event_id, by=args.name)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    await bus.start()
    emit(started=args.name)
    first_due = datetime.now(UTC) + timedelta(seconds=args.due_in)
    step = timedelta(seconds=args.spread / max(args.publish, 1))
    for index in range(args.publish):
        event = ScheduledEvent(
            event_id=f"{args.name}-{index}", scheduled_time=first_due + index * step
        )
        started = time.monotonic()
        await bus.publish(event)
        took = time.monotonic() - started
        emit(ack=event.event_id, due=event.scheduled_time.timestamp(), took=took)
    emit(published=args.publish)
    await stop.wait()
    await bus.stop()
    store.close()
    emit(stopped=args.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llmgine_conformance._bus_worker")
    parser.add_argument("opener")
    parser.add_argument("name")
    parser.add_argument("--publish", type=int, default=0)
    parser.add_argument("--due-in", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--horizon", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--publish-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    with open(args.opener, "rb") as file:
        opener = pickle.load(file)  # written by the test that started this worker
    asyncio.run(run(args, opener))


if __name__ == "__main__":
    main()
