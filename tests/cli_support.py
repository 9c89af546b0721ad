"""Running the ``taskyard`` console script as a user does: from a given directory, with no
``PYTHONPATH`` and none of taskyard's environment variables unless a test sets them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKYARD = str(Path(sys.executable).with_name("taskyard"))


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, no TASKYARD_*/TASK_PROCESSOR_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith(("TASKYARD_", "TASK_PROCESSOR_"))
    }
    env.update(extra)
    return env


def taskyard(
    *args: str, cwd: Path | str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """``taskyard ARGS`` run in ``cwd``; stdout and stderr captured as text."""
    return subprocess.run(
        [TASKYARD, *args],
        cwd=cwd,
        env=user_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed with one line on stderr (besides log records) and no traceback;
    return that line."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line)
    ]
    assert len(lines) == 1, done.stderr
    return lines[0]


def python(*args: str, cwd: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` (this interpreter) run in ``cwd`` with a user's environment."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=user_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
