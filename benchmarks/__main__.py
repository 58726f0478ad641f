"""``python -m benchmarks``: run the benchmarks, print a table, write JSON."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path

from benchmarks import eventlog, insert_methods, scheduling
from benchmarks.harness import Figure, database, table, write_json


def _insert_methods(
    directory: Path, postgres_url: str | None, *, quick: bool, backends: list[str]
) -> list[Figure]:
    runs, count = (3, 20_000) if quick else (5, 50_000)
    figures = [insert_methods.json_encoders(count=count, runs=runs)]
    for name in backends:
        with database(name, directory, postgres_url) as db:
            figures += insert_methods.measure(db, count=count, runs=runs)
    return figures


GROUPS = {
    "scheduling": scheduling.run,
    "eventlog": eventlog.run,
    "insert-methods": _insert_methods,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=sorted(GROUPS), action="append", help="a group to run")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgres"], action="append", help="default: both"
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller sizes")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("LLMGINE_TEST_POSTGRES_URL"),
        help="PostgreSQL for the postgres figures (default: LLMGINE_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    backends = args.backend or (["sqlite", "postgres"] if args.postgres_url else ["sqlite"])
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="llmgine-bench-") as directory:
        for name in args.only or sorted(GROUPS):
            figures += GROUPS[name](
                Path(directory), args.postgres_url, quick=args.quick, backends=backends
            )
            print(table(figures), end="\n\n", flush=True)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    write_json(figures, args.out, command=command)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
