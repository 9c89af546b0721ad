"""``manage.py check`` names the settings line to change (issue 10, items 5 and 10)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]


def manage_check(case: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    env.update(TASKYARD_CHECK_CASE=case, DJANGO_SETTINGS_MODULE="tests.django.check_settings")
    return subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_correct_configuration_passes() -> None:
    done = manage_check("ok")
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_taskyard_backend_without_taskyard_app() -> None:
    done = manage_check("no_app")
    assert done.returncode == 1
    assert "taskyard.E005" in done.stderr
    assert 'HINT: Add "taskyard.contrib.django" to INSTALLED_APPS.' in done.stderr


def test_db_worker_shadowed_by_an_app_listed_first() -> None:
    done = manage_check("shadowed")
    assert done.returncode == 1
    assert done.stderr.count("taskyard.E006") == 2  # db_worker and prune_db_task_results
    assert "`manage.py db_worker` runs 'tests.django.shadowing'" in done.stderr
    assert 'Remove "tests.django.shadowing" from INSTALLED_APPS' in done.stderr


def test_django_rq_without_taskyards_worker_class() -> None:
    pytest.importorskip("django_rq")
    done = manage_check("rq")
    assert done.returncode == 1
    assert "taskyard.E007" in done.stderr
    assert (
        'HINT: Set RQ = {"WORKER_CLASS": "taskyard.backends.redis.worker.TaskyardWorker"}'
        in done.stderr
    )
    assert manage_check("rq_ok").returncode == 0


@pytest.mark.django_db
def test_rq_check_in_process() -> None:
    pytest.importorskip("django_rq")
    from django.conf import settings

    from taskyard.contrib.django.checks import check_rq_worker_class

    tasks = {
        **settings.TASKS,
        "redis": {"BACKEND": "taskyard.contrib.django.backends.RedisBackend"},
    }
    assert check_rq_worker_class(tasks) == []  # the test settings name TaskyardSimpleWorker
    for worker_class in (None, "rq.worker.Worker", "no.such.Worker"):
        with override_settings(RQ={"WORKER_CLASS": worker_class} if worker_class else {}):
            [error] = check_rq_worker_class(tasks)
        assert error.id == "taskyard.E007" and "TASKS['redis']" in error.msg
