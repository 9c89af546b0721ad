"""taskyard's Django backends are genuine Django tasks backends."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.db import transaction

from taskyard import testing
from taskyard.contrib.django.testing import run_until_empty
from tests.django.testapp import tasks

if django.VERSION >= (6, 0):
    from django.tasks import TaskResultStatus, default_task_backend, signals, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.exceptions import InvalidTask
else:
    from django_tasks import TaskResultStatus, default_task_backend, signals, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def test_backends_are_django_backends() -> None:
    for alias in ("default", "dummy", "immediate", "threadpool"):
        backend = task_backends[alias]
        assert isinstance(backend, BaseTaskBackend)
    assert default_task_backend.supports_defer and default_task_backend.supports_priority
    assert default_task_backend.supports_get_result


def test_django_task_runs_in_a_taskyard_worker() -> None:
    result = tasks.django_add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert type(result).__module__.startswith(("django.tasks", "django_tasks"))
    ran = run_until_empty()
    assert [r.id for r in ran] == [result.id]
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert tasks.django_add.get_result(result.id).return_value == 5


def test_taskyard_task_shares_the_same_queue() -> None:
    mine = tasks.taskyard_add.enqueue(1, 1)
    theirs = tasks.django_add.enqueue(1, 2)
    run_until_empty()
    assert mine.wait(5).return_value == 2
    assert default_task_backend.get_result(theirs.id).return_value == 3
    assert sorted(tasks.RAN) == ["django_add", "taskyard_add"]


def test_extensions_through_django_decorator_and_using() -> None:
    flaky = tasks.django_flaky.enqueue(1)
    run_until_empty()
    flaky.refresh()
    assert flaky.status == TaskResultStatus.SUCCESSFUL and flaky.attempts == 2
    assert (
        len(flaky.errors) == 1
        and flaky.errors[0].exception_class_path == "builtins.ConnectionError"
    )
    tasks.RAN.clear()
    doomed = tasks.django_flaky.using(retries=0).enqueue(5)
    run_until_empty()
    doomed.refresh()
    assert doomed.status == TaskResultStatus.FAILED and doomed.attempts == 1
    with pytest.raises(InvalidTask, match="unknown task option"):
        tasks.django_add.using(colour="red")


def test_context_is_passed(django_capture_on_commit_callbacks: Any) -> None:
    # Inside the test's transaction, non-database backends enqueue on commit.
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.django_with_context.using(backend="immediate").enqueue(21)
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 21


def test_failure_has_traceback() -> None:
    result = tasks.django_fails.enqueue()
    run_until_empty()
    stored = default_task_backend.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert "broken on purpose" in stored.errors[0].traceback


def test_signals_fire(django_capture_on_commit_callbacks: Any) -> None:
    seen: list[tuple[str, str]] = []

    def make(name: str) -> Any:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, str(task_result.status)))

        return receiver

    receivers = {name: make(name) for name in ("task_enqueued", "task_started", "task_finished")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.django_add.using(backend="immediate").enqueue(1, 1)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)
    assert [n for n, _ in seen] == ["task_enqueued", "task_started", "task_finished"]
    assert seen[-1][1] == "SUCCESSFUL"


def test_dummy_backend_results_and_testing_helpers(django_capture_on_commit_callbacks: Any) -> None:
    backend = task_backends["dummy"]
    backend.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.django_add.using(backend="dummy").enqueue(4, 4)
    assert [r.id for r in backend.results] == [result.id]
    done = testing.run_enqueued(alias="dummy")
    assert [r.return_value for r in done] == [8]
    backend.clear()
    assert backend.results == []


def test_threadpool_backend_runs_django_tasks(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.django_add.using(backend="threadpool").enqueue(5, 5)
    core = task_backends["threadpool"].taskyard_result(result.id)
    assert core.wait(5).return_value == 10


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_database_enqueue_is_part_of_the_transaction() -> None:
    from taskyard.contrib.django.models import Task

    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.django_add.enqueue(1, 1)
        raise RuntimeError("rolled back")
    assert Task.objects.count() == 0
    with transaction.atomic():
        committed = tasks.django_add.enqueue(1, 1)
    assert list(Task.objects.values_list("status", flat=True)) == ["READY"]
    assert str(Task.objects.get().id) == committed.id


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_other_backends_enqueue_when_called_as_django_does() -> None:
    backend = task_backends["dummy"]
    backend.clear()
    with transaction.atomic():
        result = tasks.django_add.using(backend="dummy").enqueue(1, 1)
        assert [r.id for r in backend.results] == [result.id]  # at once, as Django's backends


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_enqueue_on_commit_is_an_option() -> None:
    from django.conf import settings
    from django.test import override_settings

    on_commit = {
        **settings.TASKS,
        "dummy": {
            "BACKEND": "taskyard.contrib.django.backends.DummyBackend",
            "QUEUES": [],
            "OPTIONS": {"ENQUEUE_ON_COMMIT": True},
        },
    }
    with override_settings(TASKS=on_commit):
        backend = task_backends["dummy"]
        backend.clear()
        with pytest.raises(RuntimeError), transaction.atomic():
            tasks.django_add.using(backend="dummy").enqueue(1, 1)
            raise RuntimeError("rolled back")
        assert backend.results == []
        with transaction.atomic():
            result = tasks.django_add.using(backend="dummy").enqueue(1, 1)
            assert backend.results == []  # not before the commit
        assert [r.id for r in backend.results] == [result.id]


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidTask, match="queue 'nope'"):
        tasks.django_add.using(queue_name="nope").enqueue(1, 1)
    with pytest.raises(TypeError, match=r"args\[0\].*set"):
        tasks.django_add.enqueue({1}, 2)


def test_function_that_is_not_module_level_is_refused() -> None:
    if django.VERSION >= (6, 0):
        from django.tasks import task
    else:
        from django_tasks import task

    def local(a: int) -> int:
        return a

    with pytest.raises(InvalidTask, match="module level"):
        task(local)


def test_cancelled_reads_as_failed_in_django() -> None:
    result = tasks.django_add.using(run_after=__import__("datetime").timedelta(hours=1)).enqueue(
        1, 1
    )
    core = default_task_backend.taskyard_result(result.id)
    assert core.cancel() is True
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.TaskCancelled"
    assert default_task_backend.taskyard_result(result.id).status == "CANCELLED"
