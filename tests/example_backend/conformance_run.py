"""Run the conformance suite on a store factory in a subprocess, and read the table it prints.

What a backend's own CI does: run ``llmgine-conformance --store module:factory``
and check the exit status; `ConformanceRun` also reads the "capability by
backend" table, so a test can say which capability passed, failed or skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
"""This repository's ``tests/`` directory, where ``example_backend`` and ``broken_stores`` live."""


@dataclass(frozen=True)
class ConformanceRun:
    """The outcome of one ``llmgine-conformance`` run on one backend."""

    command: list[str]
    returncode: int
    output: str
    table: dict[str, str]
    """Capability -> its cell for the backend, e.g. ``"3 failed, 22 passed"``."""

    def counts(self, capability: str) -> dict[str, int]:
        """``{"passed": 22, "failed": 3}`` for ``capability``; {} if it did not run."""
        cell = self.table.get(capability, "-")
        return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", cell)}

    def report(self, limit: int = 4000) -> str:
        """The table and the start of the failures, for an assertion message."""
        table = "\n".join(f"  {capability}: {cell}" for capability, cell in self.table.items())
        failures = self.output.find("= FAILURES =")
        details = self.output[failures:] if failures >= 0 else self.output[-limit:]
        return f"{' '.join(self.command)}\nexit {self.returncode}\n{table}\n{details[:limit]}"


def command() -> list[str]:
    """The ``llmgine-conformance`` command of the running Python's environment."""
    script = Path(sys.executable).with_name("llmgine-conformance")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmgine_conformance.cli"]


def run_conformance(
    store: str, *pytest_args: str, cwd: Path, timeout: float = 120.0
) -> ConformanceRun:
    """``llmgine-conformance --store STORE PYTEST_ARGS...`` with ``tests/`` importable."""
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    args = [*command(), "--store", store, *pytest_args]
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return ConformanceRun(args, done.returncode, done.stdout + done.stderr, read_table(done.stdout))


def read_table(output: str) -> dict[str, str]:
    """The single-backend "llmgine conformance" table of a run's output, by capability."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("llmgine conformance")]
    if not starts:
        return {}
    start = starts[-1]
    columns: Sequence[tuple[int, int]] = [m.span() for m in re.finditer(r"-+", lines[start + 1])]
    if len(columns) != 2:
        raise ValueError(f"expected one backend column, got: {lines[start]!r}")
    (_, end), (cell, _) = columns
    table: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.strip() or line.startswith(("skipped because:", "=")):
            break
        table[line[:end].strip()] = line[cell:].strip()
    return table
