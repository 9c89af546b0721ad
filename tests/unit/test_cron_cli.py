"""``taskyard cron --list / --pause / --resume`` and the paused section of ``taskyard status``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskyard.cli import main
from taskyard.cron import registry


@pytest.fixture(autouse=True)
def _declared() -> Iterator[None]:
    with registry.isolated():
        import tests.cron_schedules

        importlib.reload(tests.cron_schedules)
        yield


def test_cron_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cron", "--list", "--settings", "tests.cron_settings", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 cron schedule(s)" in out
    assert (
        "tests.cron_schedules.every_five_minutes  ->  tests.cron_schedules.every_five_minutes()"
        in out
    )
    assert "when:      */5 * * * * (Europe/Paris)" in out
    assert "cron-tests.hourly  ->  tests.cron_schedules.labelled('hourly')" in out
    assert "when:      every 2:00:00 from 1970-01-01 00:00:00 UTC" in out
    assert "declared:  settings module tests.cron_settings" in out
    assert "when:      30 2 * * * (America/New_York)" in out
    assert "policy:    catch_up (max_catch_up=100)" in out
    nightly = out[out.index("cron-tests.nightly") :]
    next_line = next(line for line in nightly.splitlines() if "next:" in line)
    assert next_line.count("02:30:00 E") + next_line.count("03:00:00 EDT") == 2  # two run times
    assert "state:     active" in out


def test_cron_without_schedules_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with registry.isolated():
        assert main(["cron", "--url", "dummy:"]) == 2
    assert "no schedules declared" in capsys.readouterr().err


def test_cron_with_a_bad_settings_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad_cron_settings.py").write_text(
        'TASKS = {"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend"}}\n'
        'CRON = {"oops": {"task": "tests.tasks.noop", "schedule": "every minute"}}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["cron", "--settings", "bad_cron_settings"]) == 2
    err = capsys.readouterr().err
    assert "cron schedule 'oops'" in err and "invalid cron expression 'every minute'" in err


def test_pause_resume_and_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cron.sqlite3"
    assert main(["migrate", "--url", url]) == 0
    capsys.readouterr()
    common = ["--settings", "tests.cron_settings", "--url", url]
    assert main(["cron", "--pause", "cron-tests.hourly", *common]) == 0
    assert capsys.readouterr().out.strip() == "cron-tests.hourly: paused"
    assert main(["cron", "--pause", "cron-tests.hourly", *common]) == 0
    assert "was already paused" in capsys.readouterr().out

    assert main(["cron", "--list", *common]) == 0
    out = capsys.readouterr().out
    hourly = out[out.index("cron-tests.hourly  ->") :].split("\n\n")[0]
    assert "state:     PAUSED since" in hourly
    assert "taskyard cron --resume cron-tests.hourly" in hourly

    assert main(["status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "cron: 1 schedule(s) paused" in out
    assert "cron-tests.hourly" in out and "PAUSED since" in out

    assert main(["cron", "--resume", "cron-tests.hourly", *common]) == 0
    assert capsys.readouterr().out.strip() == "cron-tests.hourly: resumed"
    assert main(["status", "--url", url]) == 0
    assert "paused" not in capsys.readouterr().out
    assert main(["cron", "--resume", "cron-tests.hourly", *common]) == 0
    assert "was not paused" in capsys.readouterr().out


def test_pause_an_unknown_schedule(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cron.sqlite3"
    assert main(["migrate", "--url", url]) == 0
    assert main(["cron", "--pause", "renamed", "--url", url]) == 2
    assert "no schedule named 'renamed'" in capsys.readouterr().err
    assert main(["cron", "--pause", "renamed", "--url", url, "--backend", "default"]) == 0
    assert "renamed: paused" in capsys.readouterr().out
