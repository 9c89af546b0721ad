"""The Redis backend under Django: django-rq's own ``rqworker`` runs taskyard's tasks with no
extra flag (only ``RQ = {"WORKER_CLASS": ...}`` in the settings)."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from tests.django.testapp import tasks
from tests.redis_fixtures import real_redis

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, task_backends
else:
    from django_tasks import TaskResultStatus, task_backends

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def test_django_rq_rqworker_runs_taskyard_tasks(django_capture_on_commit_callbacks: Any) -> None:
    pytest.importorskip("django_rq")
    url = real_redis(settings.REDIS_URL)
    redis_tasks = {
        **settings.TASKS,
        "redis": {
            "BACKEND": "taskyard.contrib.django.backends.RedisBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"URL": url},
        },
    }
    with override_settings(TASKS=redis_tasks):
        with django_capture_on_commit_callbacks(execute=True):
            plain = tasks.django_add.using(backend="redis").enqueue(2, 40)
            urgent = tasks.django_add.using(backend="redis", priority=10).enqueue(1, 1)
        call_command("rqworker", "default", "--burst", verbosity=0)
        backend = task_backends["redis"]
        assert backend.get_result(plain.id).return_value == 42
        assert backend.get_result(urgent.id).status == TaskResultStatus.SUCCESSFUL
        assert tasks.RAN == ["django_add", "django_add"]
