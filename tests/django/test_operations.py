"""Admin, management commands, health views and system checks."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import django
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from taskyard.contrib.django.models import Task
from taskyard.contrib.django.testing import run_until_empty
from tests.django.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def test_migration_created_the_tables() -> None:
    assert Task.objects.count() == 0
    tasks.django_add.enqueue(1, 2)
    row = Task.objects.get()
    assert row.status == "READY" and row.args == [1, 2] and row.task_path.endswith("django_add")


def test_admin_lists_filters_searches_and_shows_tracebacks(client: Client, staff: Any) -> None:
    failing = tasks.django_fails.enqueue()
    ok = tasks.django_add.enqueue(1, 1)
    run_until_empty()
    client.force_login(staff)
    listing = client.get("/admin/taskyard/task/")
    assert listing.status_code == 200
    assert failing.id in listing.content.decode() and ok.id in listing.content.decode()
    filtered = client.get("/admin/taskyard/task/?status__exact=FAILED").content.decode()
    assert failing.id in filtered and ok.id not in filtered
    searched = client.get("/admin/taskyard/task/?q=django_fails").content.decode()
    assert failing.id in searched and ok.id not in searched
    detail = client.get(f"/admin/taskyard/task/{failing.id}/change/").content.decode()
    assert "broken on purpose" in detail and "ValueError" in detail


def test_admin_actions_retry_cancel_delete(client: Client, staff: Any) -> None:
    failing = tasks.django_fails.enqueue()
    run_until_empty()
    waiting = tasks.django_add.using(run_after=__import__("datetime").timedelta(hours=1)).enqueue(
        1, 1
    )
    done = tasks.django_add.enqueue(2, 2)
    run_until_empty()
    client.force_login(staff)

    def act(action: str, *ids: str) -> None:
        response = client.post("/admin/taskyard/task/", {"action": action, "_selected_action": ids})
        assert response.status_code == 302

    act("retry_tasks", failing.id)
    assert Task.objects.get(id=failing.id).status == "READY"
    act("cancel_tasks", waiting.id)
    assert Task.objects.get(id=waiting.id).status == "CANCELLED"
    act("delete_tasks", done.id)
    assert not Task.objects.filter(id=done.id).exists()


def test_admin_refuses_anonymous_users(client: Client) -> None:
    response = client.get("/admin/taskyard/task/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_health_views(client: Client, staff: Any) -> None:
    tasks.django_add.enqueue(1, 1)
    assert client.get("/health/liveness").status_code == 200
    ready = client.get("/health/readiness")
    assert ready.status_code == 200, ready.content
    assert client.get("/processor/monitoring").status_code == 403
    client.force_login(staff)
    body = client.get("/processor/monitoring").content.decode()
    assert body.startswith('{"waiting": 1')
    assert "args" not in json.loads(body)["backends"]["default"]
    metrics = client.get("/metrics").content.decode()
    assert 'taskyard_tasks_waiting{queue="default/default"} 1' in metrics


def test_readiness_is_503_when_the_queue_is_not_ready(client: Client, staff: Any) -> None:
    client.force_login(staff)  # the problems are listed for staff (tests/django/test_health.py)
    from django.db import connections

    with connections["queue2"].cursor() as cursor:  # as if queue2 had an old schema
        cursor.execute("UPDATE taskyard_meta SET value = '1' WHERE key = 'schema_version'")
    with override_settings(
        TASKS={
            "default": {
                "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
                "OPTIONS": {"DATABASE": "queue2"},
            },
        }
    ):
        response = client.get("/health/readiness")
    assert response.status_code == 503
    assert "migrate" in response.content.decode()


def test_db_worker_with_django_tasks_db_flags() -> None:
    first = tasks.django_add.enqueue(1, 1)
    emails = tasks.django_flaky.enqueue(0)
    call_command(
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--queue-name",
        "*",
        "--exclude-queues",
        "emails",
        "--interval",
        "0.1",
        "--max-tasks",
        "10",
        "--worker-id",
        "compat",
        verbosity=0,
    )
    assert Task.objects.get(id=first.id).status == "SUCCESSFUL"
    assert Task.objects.get(id=emails.id).status == "READY"
    call_command("db_worker", "--reload", "--batch", verbosity=0)  # as django-tasks-db: no reload


def test_prune_db_task_results() -> None:
    tasks.django_add.enqueue(1, 1)
    run_until_empty()
    out = StringIO()
    call_command("prune_db_task_results", "--min-age-days", "0", "--dry-run", stdout=out)
    assert "Would delete 1 SUCCESSFUL/CANCELLED" in out.getvalue()
    call_command("prune_db_task_results", "--min-age-days", "0", stdout=StringIO())
    assert Task.objects.count() == 0


def test_move_task_processor_data() -> None:
    ids = [tasks.django_add.enqueue(i, i).id for i in range(5)]
    out = StringIO()
    call_command(
        "move_task_processor_data", "--source-db", "default", "--target-db", "queue2", stdout=out
    )
    assert "Moved 5 task(s)" in out.getvalue()
    assert Task.objects.count() == 0
    assert sorted(
        str(i) for i in Task.objects.using("queue2").values_list("id", flat=True)
    ) == sorted(ids)
    tasks.django_add.enqueue(9, 9)
    with pytest.raises(CommandError, match="already holds task data"):
        call_command("move_task_processor_data", "--source-db", "default", "--target-db", "queue2")
    with pytest.raises(CommandError, match="not a database alias"):
        call_command("move_task_processor_data", "--source-db", "nope", "--target-db", "queue2")


def test_checktaskprocessorthreadhealth_fails_without_workers() -> None:
    with pytest.raises(CommandError):
        call_command("checktaskprocessorthreadhealth", stdout=StringIO())


def test_enqueue_command_runs_a_management_command() -> None:
    out = StringIO()
    call_command("enqueue_command", "check", "--deploy", stdout=out)
    task_id = out.getvalue().split()[0]
    [result] = run_until_empty()
    assert result.id == task_id and result.status == "SUCCESSFUL"
    assert "System check" in result.return_value or "issues" in result.return_value
    with pytest.raises(CommandError, match="unknown management command"):
        call_command("enqueue_command", "no_such_command")


def test_taskyard_command_reuses_the_cli() -> None:
    tasks.django_add.enqueue(1, 1)
    call_command("taskyard", "worker", "--burst", "--queues", "*", "--log-level", "WARNING")
    assert Task.objects.get().status == "SUCCESSFUL"


@pytest.mark.parametrize(
    ("tasks_setting", "error_id"),
    [
        (
            {"default": {"BACKEND": "taskyard.contrib.django.backends.NoSuchBackend"}},
            "taskyard.E001",
        ),
        (
            {
                "default": {
                    "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
                    "OPTIONS": {"DATABASE": "nowhere"},
                }
            },
            "taskyard.E003",
        ),
        (
            {
                "default": {
                    "BACKEND": "taskyard.contrib.django.backends.ThreadPoolBackend",
                    "OPTIONS": {"WORKERS": 3},
                }
            },
            "taskyard.E002",
        ),
    ],
)
def test_system_checks_name_the_culprit(tasks_setting: dict[str, Any], error_id: str) -> None:
    from taskyard.contrib.django.checks import check_tasks_setting

    with override_settings(TASKS=tasks_setting):
        messages = list(check_tasks_setting())
    assert [m.id for m in messages] == [error_id]
    assert "default" in messages[0].msg


def test_settings_written_for_django_tasks_db_work_with_the_backend_string_changed() -> None:
    django_tasks_db_settings = {
        "default": {
            "BACKEND": "django_tasks_db.DatabaseBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"id_function": "uuid.uuid4"},
        }
    }
    ours = {
        alias: {**entry, "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend"}
        for alias, entry in django_tasks_db_settings.items()
    }
    with override_settings(TASKS=ours):
        from taskyard.contrib.django.checks import check_tasks_setting

        assert list(check_tasks_setting()) == []
        result = tasks.django_add.using(queue_name="emails").enqueue(3, 4)
        assert __import__("uuid").UUID(result.id).version == 4  # id_function honoured
        call_command("db_worker", "--batch", "--queue-name", "default,emails", verbosity=0)
        result.refresh()
        assert result.return_value == 7


def test_signup_view_enqueues(client: Client) -> None:
    response = client.get("/signup")
    task_id = response.json()["task"]
    assert str(Task.objects.get().id) == task_id


def test_django_version_leg() -> None:
    # Documents which leg ran (the CI runs Django 5.2 + backport and Django 6).
    assert django.VERSION >= (5, 2)


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_migrate_a_separate_queue_database_and_run_flagsmith_flags() -> None:
    queue_in_queue2 = {
        "default": {
            "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
            "OPTIONS": {"DATABASE": "queue2"},
        },
    }
    with override_settings(TASKS=queue_in_queue2):
        call_command("migrate", "--database", "queue2", verbosity=0)
        result = tasks.django_add.enqueue(20, 22)
        assert Task.objects.using("queue2").filter(id=result.id).exists()
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
        result.refresh()
        assert result.return_value == 42


def test_admin_shows_paused_schedules_and_resumes_them(client: Client, staff: Any) -> None:
    from django.db import connection

    from taskyard.contrib.django.models import CronState

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO taskyard_cron_state (schedule, paused, reason, failures) "
            "VALUES ('nightly', %s, 'failed 3 times in a row', 3)",
            [True],
        )
    client.force_login(staff)
    page = client.get("/admin/taskyard/cronstate/").content.decode()
    assert "nightly" in page and "failed 3 times in a row" in page
    response = client.post(
        "/admin/taskyard/cronstate/", {"action": "resume", "_selected_action": ["nightly"]}
    )
    assert response.status_code == 302
    assert CronState.objects.get(schedule="nightly").paused is False
