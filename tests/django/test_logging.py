"""Lifecycle logs under Django (issue 10, items 4 and 7): a FAILED task's records carry the
exception, and each state change is logged once by taskyard and once by Django's tasks logger
(the primary API's: ``django.tasks`` on Django 6 even with the backport installed)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.django.alerting import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])

DJANGO_LOGGERS = ("django.tasks", "django_tasks")


def _django_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in DJANGO_LOGGERS]


def _check_failure_records(caplog: pytest.LogCaptureFixture) -> None:
    ours = [r for r in caplog.records if r.name == "taskyard.tasks" and "failed" in r.message]
    assert len(ours) == 1
    assert ours[0].exc_info is not None and isinstance(ours[0].exc_info[1], RuntimeError)
    assert "kaboom" in str(ours[0].exc_info[1])
    django_records = _django_records(caplog)
    failed = [r for r in django_records if "state=FAILED" in r.getMessage()]
    assert len(failed) == 1, [(r.name, r.getMessage()) for r in django_records]
    exc_info: Any = failed[0].exc_info
    assert exc_info and isinstance(exc_info[1], RuntimeError), "Django's line lost the traceback"
    text = logging.Formatter().format(failed[0])
    assert "NoneType: None" not in text and "RuntimeError: kaboom" in text


def _one_line_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    django_records = _django_records(caplog)
    assert len({r.name for r in django_records}) == 1, "both tasks APIs logged"
    per_change = Counter(r.getMessage() for r in django_records)
    assert set(per_change.values()) == {1}, per_change


def test_failed_task_in_a_worker_logs_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tasks.explode.enqueue("kaboom")
    call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    _check_failure_records(caplog)


def test_failed_task_on_immediate_logs_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    immediate = {"default": {"BACKEND": "taskyard.contrib.django.backends.ImmediateBackend"}}
    with override_settings(TASKS=immediate):
        tasks.explode.enqueue("kaboom")
    _check_failure_records(caplog)


def test_each_state_change_is_logged_once_per_logger_family(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tasks.check_incident.enqueue(0)
    tasks.explode.enqueue("kaboom")
    call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    _one_line_per_state_change(caplog)
    states = [r for r in _django_records(caplog) if "state=" in r.getMessage()]
    assert len(states) == 4  # started and finished, two tasks
    ours = [r for r in caplog.records if r.name == "taskyard.tasks"]
    assert len(ours) == 6


def test_receivers_of_both_apis_still_get_the_signals() -> None:
    from taskyard.contrib.django.compat import apis

    seen: list[str] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(type(task_result).__module__.split(".")[0])

    for api in apis():
        api.signals.task_finished.connect(receiver)
    try:
        tasks.check_incident.enqueue(0)
        call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    finally:
        for api in apis():
            api.signals.task_finished.disconnect(receiver)
    assert sorted(seen) == sorted(api.name.split(".")[0] for api in apis())
