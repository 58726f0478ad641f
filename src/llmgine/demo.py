"""A demonstration: scheduled events survive a restart of the bus.

It publishes a few reminders due in the next seconds, stops the bus (they are
saved to the database named by ``LLMGINE_DB_URL``, by default
``./message_bus.db``), starts a new bus, and prints each delivery as it
happens. Exits with status 1 if any reminder was not delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from llmgine.bus.bus import MessageBus
from llmgine.database import DatabaseEngine
from llmgine.messages.scheduled_events import ScheduledEvent, register_scheduled_event_class


@register_scheduled_event_class
@dataclass(kw_only=True)
class DemoReminder(ScheduledEvent):
    """A reminder with a field of its own, to show that subclass fields survive."""

    text: str = ""


async def run(count: int, spacing: float) -> int:
    config = DatabaseEngine.get_config()
    print(f"database: {config.redacted_url} (schema/prefix {config.schema!r})")

    first = MessageBus()
    await first.start()
    now = datetime.now()
    reminders = [
        DemoReminder(
            text=f"reminder {i + 1}", scheduled_time=now + timedelta(seconds=spacing * (i + 1))
        )
        for i in range(count)
    ]
    for reminder in reminders:
        await first.publish(reminder)
    print(
        f"published {count} reminders due over the next {spacing * count:.1f} s; stopping the bus"
    )
    await first.stop()

    delivered: dict[str, float] = {}
    done = asyncio.Event()

    def on_reminder(event: DemoReminder) -> None:
        due = event.scheduled_time.astimezone(UTC)
        late_ms = (datetime.now(UTC) - due).total_seconds() * 1000
        delivered[event.event_id] = late_ms
        print(f"  delivered {event.text!r} after the restart, {late_ms:.1f} ms after its due time")
        if len(delivered) == count:
            done.set()

    second = MessageBus()
    second.register_event_handler(DemoReminder, on_reminder)
    print("started a new bus; it restores the saved reminders")
    await second.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=spacing * count + 10)
    await second.stop()

    missing = [r.text for r in reminders if r.event_id not in delivered]
    if missing:
        print(f"NOT delivered: {missing}")
        return 1
    print(f"all {count} reminders delivered once, every field intact")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmgine-demo", description=__doc__)
    parser.add_argument("--count", type=int, default=3, help="reminders to schedule (default 3)")
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args.count, args.spacing))


if __name__ == "__main__":
    sys.exit(main())
