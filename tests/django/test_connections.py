"""Django's connection housekeeping around task runs (issue 10, items 1 and 9), in-process.

The worker-process test with killed connections is ``test_worker_process.py``."""

from __future__ import annotations

import threading
from typing import Any

import django
import pytest
from django.db import connection, connections, transaction
from django.test import override_settings

from tests.django.alerting.models import Incident

if django.VERSION >= (6, 0):
    from django.tasks import task, task_backends
else:
    from django_tasks import task, task_backends

SEEN: list[Any] = []


@task
def touch_the_database() -> int:
    """Uses the ORM on the executing thread and remembers that thread's connection."""
    SEEN.append((threading.current_thread().name, connections["default"]))
    return Incident.objects.count()


def _other_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0])


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_threadpool_threads_close_their_connections_when_a_task_ends() -> None:
    SEEN.clear()
    result = touch_the_database.using(backend="threadpool").enqueue()
    task_backends["threadpool"].taskyard_result(result.id).wait(10)
    [(thread_name, used)] = SEEN
    assert thread_name.startswith("taskyard-threadpool")
    assert used is not connections["default"]  # the pool thread's own connection...
    if connection.vendor == "postgresql":  # (Django never closes in-memory SQLite)
        assert used.connection is None  # ...closed when the task ended
        assert _other_sessions() == 0  # nothing left for a test teardown to trip over


@pytest.mark.parametrize(
    "conn_settings",
    [{"CONN_MAX_AGE": 0}, {"CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": True}],
    ids=["conn_max_age_0", "persistent_with_health_checks"],
)
@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_a_killed_connection_is_replaced_before_the_task(conn_settings: dict[str, Any]) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("kills a PostgreSQL session (the PostgreSQL leg runs it)")
    from taskyard.contrib.django.connections import connection_housekeeping

    ready, killed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def worker_thread() -> None:
        own = connections["default"]
        own.settings_dict.update(conn_settings)
        try:
            with own.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            own.close_at = None if conn_settings["CONN_MAX_AGE"] is None else own.close_at
            ready.set()
            killed.wait(10)
            with connection_housekeeping(None):
                outcome["count"] = Incident.objects.count()
        except Exception as exc:
            outcome["error"] = repr(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker_thread)
    thread.start()
    ready.wait(10)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [outcome["pid"]])
    killed.set()
    thread.join(10)
    assert outcome.get("count") == 0, outcome


@pytest.mark.django_db(databases=["default", "queue2"])
def test_housekeeping_never_touches_a_connection_inside_a_transaction() -> None:
    from taskyard.contrib.django.connections import connection_housekeeping

    assert connection.in_atomic_block  # the test's transaction
    before = connection.connection
    with connection_housekeeping(None):
        pass
    assert connection.connection is before
    with override_settings(
        TASKS={"default": {"BACKEND": "taskyard.contrib.django.backends.ImmediateBackend"}}
    ):
        assert touch_the_database.enqueue().return_value == 0
    assert connection.connection is before


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_immediate_outside_a_transaction_leaves_the_callers_connection_alone() -> None:
    with override_settings(
        TASKS={"default": {"BACKEND": "taskyard.contrib.django.backends.ImmediateBackend"}}
    ):
        connection.ensure_connection()
        before = connection.connection
        with transaction.atomic():
            pass
        assert touch_the_database.enqueue().return_value == 0
        assert connection.connection is before  # CONN_MAX_AGE=0, yet not closed mid-request


@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_a_forked_child_does_not_use_or_close_the_parents_connection() -> None:
    """rq work horses and child worker processes are forked: the child opens its own
    connection, and the parent's session survives the child's exit."""
    import os
    import warnings

    connection.ensure_connection()
    parent_raw = connection.connection
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        pid = os.fork()
    if pid == 0:  # the child
        try:
            fresh = connection.connection is None
            Incident.objects.count()  # opens the child's own connection
            os.write(write, b"ok" if fresh and connection.connection is not parent_raw else b"no")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 2)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert connection.connection is parent_raw
    assert Incident.objects.count() == 0  # the parent's session still works
