"""A long-lived ``manage.py db_worker`` process under the alerting sample app (issue 10, item 1):
its PostgreSQL sessions are killed between two batches of incidents (every e-mail is sent, no
task FAILED), and its queue database is stopped and started again (readiness and ``taskyard
health`` say unhealthy, then healthy, and nothing is lost).

Both tests use PostgreSQL whatever ``TASKYARD_DJANGO_DB`` says: the first a database of its
own on the shared server, the second a private server it may stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import skip_or_fail
from tests.django.processes import PrivatePostgres, Project, free_port, http_get, stop, wait_for

SHARED = os.environ.get("TASKYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORKER_APP = "taskyard-sample-worker"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str) -> object:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3)


@pytest.fixture
def worker_database() -> Iterator[str]:
    """A fresh database on the shared server, named after the configured test database."""
    psycopg = pytest.importorskip("psycopg")
    name = f"taskyard_django_{urlsplit(SHARED).path.lstrip('/') or 'test'}_worker"
    try:
        admin = _admin(SHARED)
    except psycopg.Error as exc:
        skip_or_fail(f"PostgreSQL not reachable at {SHARED}: {exc}")
    with admin:  # type: ignore[attr-defined]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    yield _with_database(SHARED, name)
    with _admin(SHARED) as admin:  # type: ignore[attr-defined]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _statuses(url: str) -> dict[str, int]:
    with _admin(url) as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT status, count(*) FROM taskyard_task GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


def _worker_sessions(url: str) -> list[int]:
    with _admin(url) as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [WORKER_APP]
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def _start_worker(project: Project, port: int, log: Path, *extra: str) -> object:
    worker = project.start(
        "db_worker",
        "--queue-name",
        "*",
        "--threads",
        "5",
        "--interval",
        "0.1",
        "--health-port",
        str(port),
        "--worker-id",
        "sample-worker",
        *extra,
        app_name=WORKER_APP,
        log=log,
    )
    wait_for(lambda: http_get(port, "/health/readiness")[0] == 200, 60, "the worker to be ready")
    return worker


def test_killed_connections_never_fail_a_task(worker_database: str, tmp_path: Path) -> None:
    project = Project(worker_database, tmp_path / "mail")
    migrated = project.run("migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log = tmp_path / "worker.log"
    worker = _start_worker(project, port, log)
    try:
        project.create_incidents("first", 5)
        wait_for(lambda: len(project.sent_subjects()) == 5, 60, "the first five e-mails")
        sessions = wait_for(lambda: _worker_sessions(worker_database), 10, "worker sessions")
        with _admin(worker_database) as admin:  # type: ignore[attr-defined]
            for pid in sessions:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        project.create_incidents("second", 5)
        wait_for(lambda: len(project.sent_subjects()) == 10, 60, "the next five e-mails")
        assert sorted(project.sent_subjects()) == sorted(
            [f"[major] first-{i}" for i in range(5)] + [f"[major] second-{i}" for i in range(5)]
        )
        assert _statuses(worker_database) == {"SUCCESSFUL": 20}, log.read_text()[-3000:]
        health = project.run("taskyard", "health")
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        stop(worker)  # type: ignore[arg-type]
    assert "OperationalError" not in log.read_text()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pytest.importorskip("psycopg")
    missing = PrivatePostgres.available()
    if missing:
        skip_or_fail(missing)
    server = PrivatePostgres().init()
    yield server
    server.destroy()


def test_readiness_follows_the_queue_database(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.url
    project = Project(url, tmp_path / "mail")
    assert project.run("migrate", "-v", "0").returncode == 0
    port = free_port()
    log = tmp_path / "worker.log"
    worker = _start_worker(project, port, log, "--lease", "2")
    readiness_view = (
        "from django.test import Client\nprint(Client().get('/health/readiness').status_code)\n"
    )
    try:
        project.create_incidents("before", 2)
        wait_for(lambda: len(project.sent_subjects()) == 2, 60, "e-mails before the outage")
        private_postgres.stop()
        wait_for(lambda: http_get(port, "/health/readiness")[0] == 503, 60, "not ready")
        assert http_get(port, "/health/readiness")[1] == {"ready": False}  # no details
        down = project.run("taskyard", "health", "--no-workers")
        assert down.returncode == 1 and "FAIL database" in down.stdout
        view = project.run("shell", "-c", readiness_view)
        assert view.stdout.strip().endswith("503"), view.stdout + view.stderr
        private_postgres.start()
        wait_for(lambda: http_get(port, "/health/readiness")[0] == 200, 90, "ready again")
        assert project.run("taskyard", "health", "--no-workers").returncode == 0
        assert project.run("shell", "-c", readiness_view).stdout.strip().endswith("200")
        project.create_incidents("after", 2)
        wait_for(lambda: len(project.sent_subjects()) == 4, 60, "e-mails after the outage")
        assert _statuses(url) == {"SUCCESSFUL": 8}
    finally:
        stop(worker)  # type: ignore[arg-type]
