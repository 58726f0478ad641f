"""The wheel, as a user meets it: built from this checkout, installed with the suite's extra
(and nothing else) into a fresh virtual environment outside the repository, then
``llmgine-conformance --url sqlite:///...`` runs the whole suite to a green table, leaving
nothing behind in the directory it is run from; the author's guide and example are in it.

Prints how long each step took (run pytest with ``-s`` to see it). Needs pip to reach the
package index (or its cache) for the extra's dependencies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLMGINE_", "PYTHON", "COV_", "COVERAGE_", "HYPOTHESIS_"))
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    shown = " ".join(str(part) for part in command[1:5])
    print(f"{Path(command[0]).name} {shown}: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, f"{command}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    return result


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so the checkout gets no build/ or egg-info."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".hypothesis")
    for name in ("src", "conformance"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source,
        cwd=tmp_path, timeout=300)  # fmt: skip
    [wheel] = dist.glob("llmgine-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_with_the_suite_extra_runs_the_suite_to_a_green_table(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, timeout=120)
    python = venv / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-input",
        "-c", constraints, f"{wheel}[conformance]", cwd=tmp_path, timeout=600)  # fmt: skip
    installed = run(sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze",
                    cwd=tmp_path, timeout=120).stdout.lower()  # fmt: skip
    for absent in ("psycopg", "testcontainers", "docker", "coverage", "mypy"):
        assert f"\n{absent}==" not in f"\n{installed}"  # the extra brings the suite, no more

    work = tmp_path / "work"
    work.mkdir()
    guide = run(venv / "bin" / "llmgine-conformance", "--guide", cwd=work, timeout=60).stdout
    assert "llmgine_conformance.example:make" in guide  # the author's guide is in the wheel
    run(python, "-c", "import llmgine_conformance.example", cwd=work, timeout=60)
    result = run(venv / "bin" / "llmgine-conformance", "--url", f"sqlite:///{work / 'suite.db'}",
                 "-q", "-p", "no:randomly", cwd=work, timeout=1200)  # fmt: skip
    table = result.stdout[result.stdout.index("llmgine conformance") :]
    kept = re.search(r"this backend keeps (\d+) of (\d+) promises", table)
    assert kept is not None, table
    assert kept[1] == kept[2], table
    assert int(kept[2]) >= 10, table
    assert " failed" not in table
    assert {path.name for path in work.iterdir()} <= {"suite.db"}  # no .hypothesis/
