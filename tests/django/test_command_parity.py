"""``db_worker`` and ``prune_db_task_results`` validate like django-tasks-db 0.13's; ``manage.py
taskyard`` leaves Django's options to Django (issue 10, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from taskyard.contrib.django.models import Task
from tests.django.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])

ROOT = Path(__file__).resolve().parents[2]


def django_admin(*args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin`` (as ``manage.py``) with only ``--settings`` on the command line."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", "tests.django.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_interval_zero_is_accepted() -> None:
    result = tasks.django_add.enqueue(1, 2)
    call_command("db_worker", "--batch", "--interval", "0", verbosity=0)
    assert Task.objects.get(id=result.id).status == "SUCCESSFUL"
    for bad in ("-1", "nan", "inf", "1e300"):
        with pytest.raises(CommandError, match="interval"):
            call_command("db_worker", "--batch", "--interval", bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "nope"], "argument --backend"),
        (["--backend", "dummy"], "not a taskyard database backend"),
        (["--max-tasks", "0"], "greater than zero"),
        (["--worker-id", ""], "must not be empty"),
        (["--worker-id", "w" * 201], "at most 200"),
    ],
)
def test_db_worker_argument_errors_are_argparse_errors(argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("db_worker", "--batch", *argv)


def test_exclude_queues_needs_all_queues() -> None:
    with pytest.raises(CommandError, match="--exclude-queues can only be used with"):
        call_command("db_worker", "--batch", "--queue-name", "default", "--exclude-queues", "x")


def test_a_worker_id_of_200_characters_is_recorded() -> None:
    result = tasks.django_add.enqueue(1, 1)
    call_command("db_worker", "--batch", "--worker-id", "w" * 200, verbosity=0)
    assert Task.objects.get(id=result.id).worker_ids == ["w" * 200]


def test_prune_argument_errors_are_argparse_errors() -> None:
    with pytest.raises(CommandError, match="argument --backend"):
        call_command("prune_db_task_results", "--backend", "nope")
    with pytest.raises(CommandError, match="argument --min-age-days"):
        call_command("prune_db_task_results", "--min-age-days", "-1")
    with pytest.raises(CommandError, match="argument --min-age-days"):  # overflowed the date
        call_command("prune_db_task_results", "--min-age-days", "99999999")


def test_prune_queue_names_and_star() -> None:
    tasks.django_add.enqueue(1, 1)
    tasks.django_flaky.enqueue(0)
    call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    out = StringIO()
    call_command("prune_db_task_results", "--min-age-days", "0", "--dry-run", stdout=out)
    assert "Would delete 1 task result(s)" in out.getvalue()
    call_command("prune_db_task_results", "--min-age-days", "0", "--queue-name", "*", stdout=out)
    assert Task.objects.count() == 0


def test_reload_is_supported_as_django_tasks_db_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.utils import autoreload

    started: list[Any] = []
    monkeypatch.setattr(autoreload, "run_with_reloader", lambda f, **kw: started.append(kw))
    call_command("db_worker", "--reload", verbosity=0)
    assert len(started) == 1 and started[0]["namespace"].burst is False
    with pytest.raises(CommandError, match="--processes"):
        call_command("db_worker", "--reload", "--processes", "2")


def test_command_line_errors_exit_2() -> None:
    worker = django_admin("db_worker", "--backend", "nope")
    assert worker.returncode == 2, worker.stderr
    assert "argument --backend" in worker.stderr and "Traceback" not in worker.stderr
    prune = django_admin("prune_db_task_results", "--backend", "nope")
    assert prune.returncode == 2 and "Traceback" not in prune.stderr


def test_manage_py_taskyard_passes_settings_to_django() -> None:
    done = django_admin("taskyard", "check")  # (its in-memory database has no tables)
    assert "default: DjangoDatabaseBackend" in done.stdout, done.stdout + done.stderr


def test_django_options_are_split_off() -> None:
    from taskyard.contrib.django.management.commands.taskyard import split_django_options

    rest, found = split_django_options(
        [
            "status",
            "--settings",
            "x.y",
            "-v",
            "2",
            "--traceback",
            "--pythonpath=.",
            "--backend",
            "b",
        ]
    )
    assert rest == ["status", "--backend", "b"]
    assert found == {"settings": "x.y", "v": "2", "traceback": True, "pythonpath": "."}
