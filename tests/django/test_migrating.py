"""Each row of the "Migrating" table in docs/django.md, done as the row says.

Every test starts from the settings the other library's documentation has its users write and
changes only what the row tells them to change."""

from __future__ import annotations

import asyncio
from io import StringIO
from typing import Any

import django
import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.test import override_settings

from taskyard.contrib.django.models import Task
from taskyard.exceptions import TaskLimitError
from tests.django.alerting import tasks as alerting
from tests.django.alerting.models import Incident
from tests.django.testapp import tasks

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, task_backends
else:
    from django_tasks import TaskResultStatus, task_backends

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])

OURS = "taskyard.contrib.django.backends."


def _swap(tasks_setting: dict[str, Any], backend: str) -> dict[str, Any]:
    """The row's one-line change: the BACKEND string."""
    return {alias: {**entry, "BACKEND": OURS + backend} for alias, entry in tasks_setting.items()}


def test_django_tasks_db() -> None:
    theirs = {
        "default": {
            "BACKEND": "django_tasks_db.DatabaseBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"id_function": "uuid.uuid4"},
        }
    }
    with override_settings(TASKS=_swap(theirs, "DatabaseBackend")):
        Incident.objects.create(title="db")
        call_command(
            "db_worker",
            "--queue-name",
            "*",
            "--interval",
            "0",
            "--batch",
            "--no-startup-delay",
            "--max-tasks",
            "10",
            "--worker-id",
            "worker-1",
            verbosity=0,
        )
        assert len(mail.outbox) == 1
        out = StringIO()
        call_command(
            "prune_db_task_results",
            "--backend",
            "default",
            "--queue-name",
            "*",
            "--min-age-days",
            "0",
            "--failed-min-age-days",
            "0",
            "--dry-run",
            stdout=out,
        )
        assert "Would delete 2 task result(s)" in out.getvalue()


def test_django_tasks_rq_and_django_rq() -> None:
    pytest.importorskip("django_rq")
    from tests.redis_fixtures import real_redis

    url = real_redis(settings.REDIS_URL)
    theirs = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default", "emails"]}}
    ours = _swap(theirs, "RedisBackend")
    ours["default"]["OPTIONS"] = {"URL": url}  # the row: the Redis URL goes into OPTIONS
    from taskyard.contrib.django.checks import check_rq_worker_class

    assert check_rq_worker_class(ours) == []  # the row: RQ = {"WORKER_CLASS": ...} is set
    with override_settings(TASKS=ours):
        result = tasks.django_add.enqueue(20, 22)
        call_command("rqworker", "default", "--burst", verbosity=0)
        assert task_backends["default"].get_result(result.id).return_value == 42


def test_django_tasks_local() -> None:
    theirs = {
        "default": {
            "BACKEND": "django_tasks_local.ThreadPoolBackend",
            "OPTIONS": {"MAX_WORKERS": 2, "MAX_RESULTS": 50},
        }
    }
    with override_settings(TASKS=_swap(theirs, "ThreadPoolBackend")):
        from taskyard.contrib.django.checks import check_tasks_setting

        assert list(check_tasks_setting()) == []
        result = tasks.django_add.enqueue(2, 3)
        backend = task_backends["default"]
        assert backend.taskyard_result(result.id).wait(10).return_value == 5
        assert backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_djangos_immediate_and_dummy_backends() -> None:
    api = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    queues = ["default", "emails"]
    immediate = {
        "default": {"BACKEND": f"{api}.backends.immediate.ImmediateBackend", "QUEUES": queues}
    }
    with override_settings(TASKS=_swap(immediate, "ImmediateBackend")):
        Incident.objects.create(title="inline")  # inside the test's transaction
        assert len(mail.outbox) == 1
    dummy = {"default": {"BACKEND": f"{api}.backends.dummy.DummyBackend"}}
    with override_settings(TASKS=_swap(dummy, "DummyBackend")):
        backend = task_backends["default"]
        backend.clear()
        result = tasks.django_add.enqueue(1, 2)
        assert [r.id for r in backend.results] == [result.id]
        assert result.status == TaskResultStatus.READY
        backend.clear()
        assert backend.results == []


def test_django_crontask(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("crontask", "--list")
    listing = capsys.readouterr().out
    assert "tests.django.alerting.tasks.daily_digest" in listing and "0 3 * * *" in listing


def test_flagsmith_task_processor() -> None:
    tasks.django_add.enqueue(1, 1)
    call_command(
        "db_worker",
        "--batch",
        "--numthreads",
        "2",
        "--sleepintervalms",
        "100",
        "--graceperiodms",
        "20000",
        "--queuepopsize",
        "5",
        verbosity=0,
    )
    assert list(Task.objects.values_list("status", flat=True)) == ["SUCCESSFUL"]


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_fullctl() -> None:
    import taskyard

    # TaskMeta.limit = 1 with generate_limit_id -> limit=1, limit_key=...
    unique = tasks.django_add.using(limit=1, limit_key="org-7")
    unique.enqueue(1, 1)
    with pytest.raises(TaskLimitError):
        unique.enqueue(1, 1)
    # create_task(..., parent=task) -> using(depends_on=result)
    parent = tasks.django_add.enqueue(2, 2)
    child = tasks.django_add.using(depends_on=parent).enqueue(3, 3)
    call_command("db_worker", "--batch", verbosity=0)
    core = task_backends["default"].taskyard_result(child.id)
    # task.wait() / await task.async_wait() -> result.wait() / await result.wait_async()
    assert core.wait(5).return_value == 6
    assert asyncio.run(core.wait_async(5)).status == taskyard.TaskResultStatus.SUCCESSFUL
    # TaskMeta.qualifiers = [Setting(...)] -> @task(qualifiers=[Setting(...)])
    qualified = alerting.needs_important_setting.enqueue()
    with override_settings(IMPORTANT_SETTING=False):
        call_command("db_worker", "--batch", verbosity=0)
    assert Task.objects.get(id=qualified.id).status == "READY"
    # manage.py <command> -Q -> manage.py enqueue_command <command>
    out = StringIO()
    call_command("enqueue_command", "check", stdout=out)
    task_id = out.getvalue().split()[0]
    call_command("db_worker", "--batch", verbosity=0)
    assert Task.objects.get(id=task_id).status == "SUCCESSFUL"
