"""Every command line and the test recipe in docs/cron.md, and the example, really run."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskyard.cli import main
from taskyard.cron import registry
from tests.integration.conftest import ROOT, wait_for

DOC = (ROOT / "docs" / "cron.md").read_text()
COMMANDS = [
    line.strip()
    for block in re.findall(r"```console\n(.*?)```", DOC, re.DOTALL)
    for line in block.splitlines()
    if line.strip().startswith("taskyard ")
]
LONG_RUNNING = [
    c for c in COMMANDS if not re.search(r"--list|--pause|--resume|^taskyard status", c)
]
ONE_SHOT = [c for c in COMMANDS if c not in LONG_RUNNING]


@pytest.fixture(autouse=True)
def _example_declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # the example settings use ./taskyard.sqlite3
    with registry.isolated():
        import examples.cron_example

        importlib.reload(examples.cron_example)
        yield


def test_the_doc_shows_commands() -> None:
    assert len(LONG_RUNNING) == 3 and len(ONE_SHOT) == 4


def test_one_shot_commands(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for command in ONE_SHOT:
        assert main(shlex.split(command)[1:]) == 0, command
        outputs.append(capsys.readouterr().out)
    paused, listing, status, resumed = outputs
    assert paused.strip() == "market-snapshot: paused"
    assert "london-close  ->  examples.cron_example.snapshot('LSE')" in listing
    assert "when:      */5 9-17 * * mon-fri (America/New_York)" in listing
    assert "purge_sessions" not in listing  # disabled by the settings
    assert "state:     PAUSED since" in listing
    assert "cron: 1 schedule(s) paused" in status and "market-snapshot" in status
    assert resumed.strip() == "market-snapshot: resumed"


@pytest.mark.parametrize("command", LONG_RUNNING)
def test_long_running_commands(command: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("TASKYARD_SETTINGS", "TASKYARD_URL"):
        env.pop(name, None)
    log = tmp_path / "out.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskyard", *shlex.split(command)[1:]],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "enqueued examples.cron_example.heartbeat" in log.read_text(),
            timeout=30,
            what=f"{command} to enqueue the heartbeat",
        )
        if "worker" in command:
            wait_for(
                lambda: (
                    "task succeeded" in log.read_text()
                    and "examples.cron_example.heartbeat" in log.read_text()
                ),
                timeout=30,
                what="the worker to run it",
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, log.read_text()


def test_the_testing_recipe() -> None:
    recipe = re.search(r"## Testing your schedules.*?```python\n(.*?)```", DOC, re.DOTALL)
    assert recipe is not None
    exec(compile(recipe.group(1), "docs/cron.md", "exec"), {})


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import examples.cron_example

    started = time.monotonic()
    assert examples.cron_example.main(seconds=2.2) == 0
    assert time.monotonic() - started < 15
    out = capsys.readouterr().out
    assert "heartbeat  ->  examples.cron_example.heartbeat()" in out
    assert re.search(r"heartbeat ran [1-3] time\(s\): \['alive'", out)
