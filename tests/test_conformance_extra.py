"""The suite's own extra: ``pip install 'llmgine[conformance]'`` gives ``llmgine-conformance``
everything it imports, and without it the command says which extra to install."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from llmgine_conformance.cli import EXIT_NOT_INSTALLED, REQUIREMENTS

ROOT = Path(__file__).resolve().parent.parent


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["optional-dependencies"])


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0] for requirement in requirements}


def test_the_conformance_extra_is_what_the_suite_imports_and_no_more() -> None:
    assert names(extras()["conformance"]) == set(REQUIREMENTS.values())


def test_containers_have_their_own_extra_and_the_test_extra_includes_both() -> None:
    assert names(extras()["containers"]) == {"testcontainers"}
    assert "llmgine[conformance,containers]" in extras()["test"]
    assert "llmgine[postgres,test]" in extras()["dev"]


def test_every_third_party_requirement_is_pinned_in_constraints() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    wanted = {name.lower() for extra in extras().values() for name in names(extra)} - {"llmgine"}
    assert wanted <= pinned


def test_without_pytest_the_command_names_the_extra_to_install(tmp_path: Path) -> None:
    run = (
        "import sys; sys.modules['pytest'] = None; "
        "from llmgine_conformance.cli import main; "
        f"sys.exit(main(['--url', 'sqlite:///{tmp_path}/x.db']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", run], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == EXIT_NOT_INSTALLED, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("llmgine-conformance: the suite needs pytest, ")
    assert line.endswith("not installed here; install the suite's extra: "
                         "pip install 'llmgine[conformance]'")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nothing was run, no database made
