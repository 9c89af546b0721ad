"""The admin obeys Django's model permissions (issue 10, item 6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from taskyard.contrib.django.models import CronState, Task
from taskyard.contrib.django.testing import run_until_empty
from tests.django.testapp import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def _staff(django_user_model: Any, *codenames: str) -> Any:
    user = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw")
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return django_user_model.objects.get(pk=user.pk)  # fresh permission cache


def _tasks() -> dict[str, str]:
    failing = tasks.django_fails.enqueue()
    done = tasks.django_add.enqueue(2, 2)
    run_until_empty()
    waiting = tasks.django_add.using(run_after=timedelta(hours=1)).enqueue(1, 1)
    return {"failing": failing.id, "waiting": waiting.id, "done": done.id}


def _act(client: Client, action: str, *ids: str) -> Any:
    return client.post("/admin/taskyard/task/", {"action": action, "_selected_action": ids})


def _status(task_id: str) -> str | None:
    row = Task.objects.filter(id=task_id).first()
    return None if row is None else row.status


def test_view_only_staff_can_look_but_not_act(client: Client, django_user_model: Any) -> None:
    ids = _tasks()
    client.force_login(_staff(django_user_model, "view_task"))
    listing = client.get("/admin/taskyard/task/")
    assert listing.status_code == 200 and ids["failing"] in listing.content.decode()
    for action in ("retry_tasks", "cancel_tasks", "delete_tasks"):
        assert action not in listing.content.decode()
    detail = client.get(f"/admin/taskyard/task/{ids['failing']}/change/")
    assert detail.status_code == 200 and "broken on purpose" in detail.content.decode()
    assert "/delete/" not in detail.content.decode()
    _act(client, "retry_tasks", ids["failing"])
    _act(client, "cancel_tasks", ids["waiting"])
    _act(client, "delete_tasks", ids["done"])
    assert client.post(f"/admin/taskyard/task/{ids['done']}/delete/", {"post": "yes"}).status_code
    assert (_status(ids["failing"]), _status(ids["waiting"]), _status(ids["done"])) == (
        "FAILED",
        "READY",
        "SUCCESSFUL",
    )
    assert client.get(f"/admin/taskyard/task/{ids['done']}/delete/").status_code == 403


def test_change_permission_retries_and_cancels_but_does_not_delete(
    client: Client, django_user_model: Any
) -> None:
    ids = _tasks()
    client.force_login(_staff(django_user_model, "view_task", "change_task"))
    _act(client, "retry_tasks", ids["failing"])
    _act(client, "cancel_tasks", ids["waiting"])
    _act(client, "delete_tasks", ids["done"])
    assert (_status(ids["failing"]), _status(ids["waiting"]), _status(ids["done"])) == (
        "READY",
        "CANCELLED",
        "SUCCESSFUL",
    )


def test_delete_permission_deletes_finished_tasks_only(
    client: Client, django_user_model: Any
) -> None:
    ids = _tasks()
    client.force_login(_staff(django_user_model, "view_task", "delete_task"))
    _act(client, "delete_tasks", ids["done"], ids["waiting"])
    assert _status(ids["done"]) is None and _status(ids["waiting"]) == "READY"
    assert client.get(f"/admin/taskyard/task/{ids['waiting']}/delete/").status_code == 403
    response = client.post(f"/admin/taskyard/task/{ids['failing']}/delete/", {"post": "yes"})
    assert response.status_code == 302 and _status(ids["failing"]) is None


def test_resuming_a_cron_schedule_needs_change_permission(
    client: Client, django_user_model: Any
) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO taskyard_cron_state (schedule, paused, reason, failures) "
            "VALUES ('nightly', %s, 'failed', 3)",
            [True],
        )
    client.force_login(_staff(django_user_model, "view_cronstate"))
    assert client.get("/admin/taskyard/cronstate/").status_code == 200
    client.post("/admin/taskyard/cronstate/", {"action": "resume", "_selected_action": ["nightly"]})
    assert CronState.objects.get(schedule="nightly").paused is True
