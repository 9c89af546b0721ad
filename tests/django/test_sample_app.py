"""The alerting sample app (incident -> queued check -> queued e-mail) in its own test suite,
driven the ways Django applications test their task flows (issue 10, items 2 and 3)."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.test import TestCase, override_settings

from taskyard.contrib.django.models import Task
from tests.django.alerting.models import Incident

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, task_backends
else:
    from django_tasks import TaskResultStatus, task_backends

IMMEDIATE_DEFAULT = {
    "default": {"BACKEND": "taskyard.contrib.django.backends.ImmediateBackend", "QUEUES": []},
}
DJANGO_IMMEDIATE = {
    "default": {
        "BACKEND": (
            "django.tasks.backends.immediate.ImmediateBackend"
            if django.VERSION >= (6, 0)
            else "django_tasks.backends.immediate.ImmediateBackend"
        ),
        "QUEUES": [],
    }
}


class ImmediateBackendInTestCase(TestCase):
    """Item 2: with default options, Immediate runs the task when it is enqueued, inside the
    test's transaction -- exactly as Django's ImmediateBackend."""

    databases = {"default", "queue2"}

    @override_settings(TASKS=IMMEDIATE_DEFAULT)
    def test_incident_sends_one_mail(self) -> None:
        Incident.objects.create(title="disk full")
        assert [m.subject for m in mail.outbox] == ["[major] disk full"]

    @override_settings(TASKS=IMMEDIATE_DEFAULT)
    def test_row_created_and_deleted_in_one_atomic_block(self) -> None:
        with transaction.atomic():
            incident = Incident.objects.create(title="flapping")
            incident.delete()
        assert len(mail.outbox) == 1  # the task ran at create time, as Django runs it

    def test_same_as_djangos_own_immediate_backend(self) -> None:
        outboxes = []
        for tasks_setting in (DJANGO_IMMEDIATE, IMMEDIATE_DEFAULT):
            mail.outbox.clear()
            with override_settings(TASKS=tasks_setting), transaction.atomic():
                Incident.objects.create(title="cpu")
                Incident.objects.create(title="memory")
            outboxes.append([m.subject for m in mail.outbox])
        assert outboxes[0] == outboxes[1] == ["[major] cpu", "[major] memory"]


class DbWorkerBatchInTestCase(TestCase):
    """Item 3: ``call_command("db_worker", "--batch")`` inside a TestCase runs the tasks on the
    test's thread and connection, follow-ups included, and leaves the connection open."""

    databases = {"default", "queue2"}

    def test_db_worker_batch_sends_the_mail(self) -> None:
        from django.db import connection

        Incident.objects.create(title="disk full")
        assert Task.objects.filter(status="READY").count() == 1
        call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
        assert [m.subject for m in mail.outbox] == ["[major] disk full"]
        assert sorted(Task.objects.values_list("status", flat=True)) == ["SUCCESSFUL"] * 2
        assert connection.connection is not None and connection.in_atomic_block

    def test_taskyard_worker_burst_sends_the_mail(self) -> None:
        Incident.objects.create(title="disk full")
        call_command("taskyard", "worker", "--burst", "--queues", "*", "--log-level", "WARNING")
        assert len(mail.outbox) == 1

    def test_queue_options_are_honoured_in_place(self) -> None:
        Incident.objects.create(title="one")
        call_command("db_worker", "--batch", "--queue-name", "default", verbosity=0)
        assert mail.outbox == []  # the e-mail task waits on the "emails" queue
        assert Task.objects.filter(status="READY", queue_name="emails").count() == 1
        Incident.objects.create(title="two")
        call_command(
            "db_worker", "--batch", "--queue-name", "*", "--exclude-queues", "emails", verbosity=0
        )
        assert Task.objects.filter(status="READY", queue_name="emails").count() == 2
        call_command("db_worker", "--batch", "--queue-name", "*", "--max-tasks", "1", verbosity=0)
        assert len(mail.outbox) == 1
        call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
        assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_outside_a_transaction_db_worker_batch_is_the_real_worker() -> None:
    Incident.objects.create(title="committed")
    call_command("db_worker", "--batch", "--queue-name", "*", "--threads", "2", verbosity=0)
    assert len(mail.outbox) == 1
    assert set(Task.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}


@pytest.mark.django_db(databases=["default", "queue2"])
def test_run_until_empty_is_still_there(django_capture_on_commit_callbacks: Any) -> None:
    from taskyard.contrib.django.testing import run_until_empty

    Incident.objects.create(title="helper")
    assert [r.status for r in run_until_empty()] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert len(mail.outbox) == 1


@pytest.mark.django_db(databases=["default", "queue2"])
def test_database_backend_stays_transactional() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Incident.objects.create(title="rolled back")
        raise RuntimeError("rollback")
    assert Task.objects.count() == 0
    Incident.objects.create(title="committed")
    [row] = Task.objects.all()
    assert row.status == "READY"
    assert task_backends["default"].get_result(str(row.id)).status == TaskResultStatus.READY
    assert settings.TASKS["default"]["BACKEND"].endswith("DatabaseBackend")
