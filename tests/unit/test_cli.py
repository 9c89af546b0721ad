"""The ``taskyard`` command line (the commands the docs show are exercised here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskyard.cli import main


def test_check_with_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", "threadpool:?max_workers=4"]) == 0
    out = capsys.readouterr().out
    assert "default: ThreadPoolBackend" in out and "MAX_WORKERS = 4" in out


def test_check_with_a_settings_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--settings", "tests.unit.settings_module_for_tests"]) == 0
    out = capsys.readouterr().out
    assert "pool: ThreadPoolBackend  queues: (any)" in out


def test_configuration_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--url", "nosuch:"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_console_script_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskyard", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("taskyard ")
