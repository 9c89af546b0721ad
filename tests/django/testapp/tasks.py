"""Tasks of the Django test app: declared with Django's own @task and with taskyard's."""

from __future__ import annotations

import django

import taskyard

if django.VERSION >= (6, 0):
    from django.tasks import task as django_task
else:
    from django_tasks import task as django_task

RAN: list[str] = []


@django_task
def django_add(a: int, b: int) -> int:
    RAN.append("django_add")
    return a + b


@django_task(queue_name="emails", priority=5, retries=2, retry_backoff=0)
def django_flaky(fail_times: int) -> str:
    RAN.append("django_flaky")
    if RAN.count("django_flaky") <= fail_times:
        raise ConnectionError("flaky")
    return "ok"


@django_task(takes_context=True)
def django_with_context(context: object, n: int) -> int:
    return n * getattr(context, "attempt", 0)


@taskyard.task
def taskyard_add(a: int, b: int) -> int:
    RAN.append("taskyard_add")
    return a + b


@taskyard.task
def django_fails() -> None:
    raise ValueError("broken on purpose")
