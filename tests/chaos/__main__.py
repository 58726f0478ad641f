"""``python -m chaos [SCENARIO ...] [--events N] [--out FILE]``, from ``tests/``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from chaos.harness import SCENARIOS, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], default=[])
    parser.add_argument("--events", type=int, help="events per scenario (default 3000)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    results = []
    for name in args.scenarios or list(SCENARIOS):
        scenario = SCENARIOS[name]
        if args.events:
            scenario = dataclasses.replace(scenario, events=args.events)
        result = run(scenario, log=lambda line: print(line, file=sys.stderr, flush=True))
        print(result.line(), flush=True)
        for note in result.notes:
            print(f"    {note}", flush=True)
        results.append(result.as_dict())
    if args.out:
        with open(args.out, "w") as file:
            json.dump(results, file, indent=2)
    bad = [
        r
        for r in results
        if r["lost"]
        or r["stranded"]
        or r["self_duplicated"]
        or r["unexplained_duplicates"]
        or r["early"]
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
