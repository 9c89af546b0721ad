"""Async tasks under Django (issue 13): Django's async ORM inside coroutines on a worker's
event loop, with the connection housekeeping of issue 10 around each (a killed connection is
replaced, not a failed task); ``supports_async_task`` is truthful on every backend."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import django
import pytest
from django.db import connection

from taskyard.config import backends
from taskyard.contrib.django.settings import ensure_configured
from taskyard.worker.worker import Worker, WorkerConfig
from tests.django.alerting.models import Incident

if django.VERSION >= (6, 0):
    from django.tasks import task, task_backends
else:
    from django_tasks import task, task_backends


@task
async def count_incidents(pause: float = 0.0) -> int:
    await asyncio.sleep(pause)
    return await Incident.objects.acount()


@task
async def open_incident(title: str) -> int:
    incident = await Incident.objects.acreate(title=title)
    return incident.pk


def _run_worker() -> tuple[Worker, threading.Thread]:
    ensure_configured()
    backend = backends["default"]
    worker = Worker(
        backend,  # type: ignore[arg-type]
        WorkerConfig(queues=None, threads=1, interval=0.05, lease=5, handle_signals=False),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return worker, thread


def _wait_all(ids: list[str], timeout: float = 20.0) -> list[Any]:
    backend = task_backends["default"]
    deadline = time.monotonic() + timeout
    while True:
        results = [backend.get_result(i) for i in ids]
        if all(r.is_finished for r in results) or time.monotonic() > deadline:
            return results
        time.sleep(0.05)


def test_every_backend_says_truthfully_it_runs_async_tasks() -> None:
    for alias in ("default", "dummy", "immediate", "threadpool"):
        assert task_backends[alias].supports_async_task is True


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_async_orm_tasks_run_as_coroutines_on_the_workers_loop() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "the SQLite test database is in memory with a shared cache, where concurrent "
            "writers fail at once instead of waiting (the PostgreSQL leg runs it)"
        )
    Incident.objects.create(title="existing")
    worker, thread = _run_worker()
    try:
        created = [open_incident.enqueue(f"i{n}").id for n in range(5)]
        counted = [count_incidents.enqueue(0.3).id for _ in range(10)]
        results = _wait_all(created + counted)
    finally:
        worker.stop()
        thread.join(15)
    assert [r.status.name for r in results] == ["SUCCESSFUL"] * 15
    assert Incident.objects.count() == 6
    assert worker.runner is not None and worker.runner.blocked_total == 0


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_a_killed_connection_does_not_fail_async_tasks() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("kills a PostgreSQL session (the PostgreSQL leg runs it)")
    worker, thread = _run_worker()
    try:
        first = _wait_all([count_incidents.enqueue().id for _ in range(5)])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        second = _wait_all([count_incidents.enqueue().id for _ in range(5)], timeout=30)
    finally:
        worker.stop()
        thread.join(15)
    assert [r.status.name for r in first + second] == ["SUCCESSFUL"] * 10
