"""The README's first example runs as written, as a user's own script, and shows the event
arriving on the second bus."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def first_python_example() -> str:
    text = README.read_text()
    using_it = text[text.index("## Using it") :]
    match = re.search(r"```python\n(.*?)```", using_it, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.slow
def test_the_first_example_runs_as_written_and_the_event_arrives(tmp_path: Path) -> None:
    script = tmp_path / "restart.py"
    script.write_text(first_python_example())
    env = {name: value for name, value in os.environ.items() if not name.startswith("LLMGINE_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"arrived [0-9a-f-]{36}\n", result.stdout), result.stdout
    assert (tmp_path / "message_bus.db").exists()  # the zero-configuration default
