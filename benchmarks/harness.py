"""Measuring, repeating, and reporting: medians, baselines, a table and a JSON file."""

from __future__ import annotations

import json
import platform
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from llmgine.database.config import normalize_url
from llmgine.database.sqlstore import SQLAlchemyStore


@dataclass
class Figure:
    """One measured quantity: the median of its runs, with its baseline if it has one."""

    group: str
    name: str
    backend: str
    unit: str
    runs: list[float]
    baseline_name: str | None = None
    baseline_runs: list[float] = field(default_factory=list)
    target: str | None = None
    """What the issue asks of this figure, as text (e.g. ">= 10x")."""
    baseline_setup: str | None = None
    """How the baseline was set up, as its database reported it; printed under the table."""

    @property
    def value(self) -> float:
        return statistics.median(self.runs)

    @property
    def baseline(self) -> float | None:
        return statistics.median(self.baseline_runs) if self.baseline_runs else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline
        return None if not base else self.value / base

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(value=self.value, baseline=self.baseline, ratio=self.ratio)
        return data


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    """``measure()`` ``runs`` times."""
    return [measure() for _ in range(runs)]


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...``; ``elapsed()`` is the seconds so far (or in total)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table, each baseline's setup in a note under it."""
    header = ["group", "figure", "backend", "median", "unit", "baseline", "ratio", "target", "runs"]
    notes: dict[str, int] = {}
    for f in figures:
        if f.baseline_setup is not None:
            notes.setdefault(f"{f.backend}: {f.baseline_setup}", len(notes) + 1)

    def baseline(f: Figure) -> str:
        if not f.baseline_name:
            return "-"
        note = f" [{notes[f'{f.backend}: {f.baseline_setup}']}]" if f.baseline_setup else ""
        return f"{f.baseline_name}{note}: {format_number(f.baseline)}"

    rows = [
        [
            f.group,
            f.name,
            f.backend,
            format_number(f.value),
            f.unit,
            baseline(f),
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.target or "-",
            str(len(f.runs)),
        ]
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"[{number}] {note}" for note, number in notes.items()]
    return "\n".join(lines)


def write_json(figures: list[Figure], path: Path, *, command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": [f.as_dict() for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


@dataclass
class Database:
    """A place to benchmark: a URL and a namespace of its own, removed afterwards."""

    name: str
    url: str
    schema: str

    def store(self) -> SQLAlchemyStore:
        return SQLAlchemyStore.from_url(self.url, schema=self.schema)

    def drop(self) -> None:
        if self.name == "postgres":
            engine = create_engine(normalize_url(self.url))
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            engine.dispose()
        else:
            store = self.store()
            store.drop()
            store.close()


@contextmanager
def database(name: str, directory: Path, postgres_url: str | None) -> Iterator[Database]:
    """A fresh SQLite file, or a fresh schema in the PostgreSQL database."""
    tag = uuid.uuid4().hex[:8]
    if name == "postgres":
        if postgres_url is None:
            raise RuntimeError(
                "postgres benchmarks need --postgres-url or LLMGINE_TEST_POSTGRES_URL"
            )
        db = Database("postgres", postgres_url, f"llmgine_bench_{tag}")
    else:
        db = Database("sqlite", f"sqlite:///{directory / f'bench-{tag}.db'}", "bench")
    try:
        yield db
    finally:
        db.drop()
