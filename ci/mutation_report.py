"""Print the mutation score of the last ``mutmut run`` and every surviving mutant.

Reads mutmut's result files (``mutants/**/*.py.meta``). The score is killed /
(killed + survived + timeout + suspicious): mutants no selected test reaches
("no tests") are counted and listed apart, since no suite test could kill them.
Survivors listed in ``ci/equivalent_mutants.txt`` (one ``name  # why`` a line)
are reported as reviewed. Exit status 1 if any survivor is unreviewed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}
NOT_CHECKED = {None}
EQUIVALENT = Path(__file__).with_name("equivalent_mutants.txt")


def results(root: Path) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for meta in sorted(root.glob("**/*.py.meta")):
        found.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return found


def reviewed() -> set[str]:
    if not EQUIVALENT.exists():
        return set()
    lines = EQUIVALENT.read_text(encoding="utf-8").splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def main() -> int:
    codes = results(Path("mutants"))
    if not codes:
        print("no mutmut results under mutants/: run `make mutation`")
        return 1
    status = Counter(
        "killed"
        if code in KILLED
        else "survived"
        if code in SURVIVED
        else "no tests"
        if code in NO_TESTS
        else "not checked"
        if code in NOT_CHECKED
        else "other"
        for code in codes.values()
    )
    checked = status["killed"] + status["survived"] + status["other"]
    score = 100.0 * status["killed"] / checked if checked else 0.0
    print(f"mutants: {len(codes)}  " + "  ".join(f"{k}: {v}" for k, v in sorted(status.items())))
    print(f"mutation score: {score:.1f}% ({status['killed']} killed of {checked} checked)")
    equivalent = reviewed()
    survivors = sorted(name for name, code in codes.items() if code in SURVIVED)
    unreviewed = [name for name in survivors if name not in equivalent]
    reviewed_count = len(survivors) - len(unreviewed)
    print(f"surviving mutants: {len(survivors)} ({reviewed_count} reviewed as equivalent)")
    if checked > reviewed_count:
        adjusted = 100.0 * status["killed"] / (checked - reviewed_count)
        print(f"score without the reviewed equivalents: {adjusted:.1f}%")
    if status["not checked"]:
        print(f"not checked yet: {status['not checked']} (run `make mutation` again to go on)")
    for name in unreviewed:
        print(f"  {name}")
    return 1 if unreviewed else 0


if __name__ == "__main__":
    sys.exit(main())
