"""Operations on the Database backend: retention, moving between dialects, health probes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import taskyard
from taskyard import TaskResultStatus
from taskyard.backends.database import DatabaseBackend
from taskyard.backends.database.connectors import make_connector
from taskyard.backends.database.migrate import migrate
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.cli import main
from taskyard.config import backends
from taskyard.tasks.execution import utcnow
from taskyard.worker.operations import move_data
from taskyard.worker.probes import WorkerHealth, health_check
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks
from tests.integration.test_database_faults import burst


def _age_results(db: DatabaseBackend, days: int) -> None:
    sql = (
        "UPDATE taskyard_task SET finished_at = finished_at - interval '%s days'"
        if db.dialect == "postgresql"
        else "UPDATE taskyard_task SET finished_at = datetime(finished_at, '-%s days')"
    )
    db.connector.run_script(sql % days)


def test_result_retention_deletes_old_results(db_url: str) -> None:
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {
                    "URL": db_url,
                    "AUTO_MIGRATE": True,
                    "RESULT_RETENTION": 3600.0,
                    "FAILED_RETENTION": 86400.0 * 7,
                },
            }
        }
    )
    db = backends["default"]
    assert isinstance(db, DatabaseBackend)
    old_ok, old_failed = tasks.add.enqueue(1, 1), tasks.fail.enqueue()
    burst(db)
    _age_results(db, 2)  # two days old: past RESULT_RETENTION, within FAILED_RETENTION
    fresh = tasks.add.enqueue(2, 2)
    burst(db)
    worker = Worker(db, WorkerConfig(queues=None, handle_signals=False))
    worker.maintenance.tick()
    assert QueueOps(db).apply_retention(3600.0, 86400.0 * 7) == 0  # the tick did it already
    ids = {
        str(r["id"])
        for r in db.connector.run(
            "export_batch", {"after": "00000000-0000-0000-0000-000000000000", "batch": 100}
        )
    }
    assert old_ok.id not in ids and old_failed.id in ids and fresh.id in ids


def test_move_data_from_sqlite_to_postgresql(tmp_path: Path, postgres_url: str) -> None:
    source_url = f"sqlite:///{tmp_path}/old.sqlite3"
    taskyard.configure(url=source_url + "?auto_migrate=true")
    waiting = tasks.add.using(priority=7, run_after=timedelta(hours=1)).enqueue(1, 2)
    done = tasks.echo.enqueue({"nested": [1, "two"]})
    burst(backends["default"])  # type: ignore[arg-type]
    backends.reset()
    source = make_connector(source_url, {})
    target = make_connector(postgres_url, {})
    migrate(target)
    assert move_data(source, target) == 2
    taskyard.configure(url=postgres_url)
    moved = tasks.add.get_result(waiting.id)
    assert (moved.status, moved.task.priority, moved.args) == ("READY", 7, [1, 2])
    assert moved.task.run_after is not None
    assert tasks.echo.get_result(done.id).return_value == {
        "args": [{"nested": [1, "two"]}],
        "kwargs": {},
    }


@pytest.fixture
def running_worker(db: DatabaseBackend) -> Iterator[Worker]:
    worker = Worker(db, WorkerConfig(queues=None, interval=0.05, lease=5, handle_signals=False))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(10)


def test_health_checks_with_a_live_worker_and_a_probe(
    db: DatabaseBackend, running_worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    time.sleep(0.3)
    checks = health_check(db, require_workers=True, probe_queue="default", probe_timeout=10)
    assert [(name, ok) for name, ok, _ in checks] == [
        ("database", True),
        ("workers", True),
        ("probe", True),
    ]
    assert main(["health", "--url", db.url, "--probe", "--probe-timeout", "10"]) == 0
    assert "ok   probe: probe answered" in capsys.readouterr().out
    ready, detail = WorkerHealth(running_worker, probe_timeout=10).readiness()
    assert ready and "probe answered" in detail


def test_probe_fails_without_a_worker(db: DatabaseBackend) -> None:
    checks = health_check(db, require_workers=False, probe_queue="default", probe_timeout=0.5)
    assert checks[-1][0] == "probe" and checks[-1][1] is False
    assert "not run within 0.5s" in checks[-1][2]


def test_prune_by_queue_and_age(db: DatabaseBackend) -> None:
    tasks.add.using(queue_name="emails").enqueue(1, 1)
    tasks.add.enqueue(1, 1)
    burst(db)
    ops = QueueOps(db)
    later = utcnow() + timedelta(seconds=5)
    assert ops.prune(later, ["SUCCESSFUL"], ["emails"], 1000, dry_run=True) == 1
    assert ops.prune(later, ["SUCCESSFUL"], ["emails"], 1, dry_run=False) == 1
    assert ops.prune(later, ["SUCCESSFUL"], None, 1000, dry_run=True) == 1


def test_enqueue_many_stores_every_option_in_one_statement(db: DatabaseBackend) -> None:
    """The bulk insert (one statement for the plain calls) stores what ``enqueue`` stores."""
    later = datetime.now(UTC) + timedelta(hours=1)
    calls = [
        tasks.add.prepare(1, 2),
        tasks.add.using(priority=7, queue_name="other", run_after=later).prepare(3, b=4),
        tasks.record.using(retries=2).prepare("x"),
    ]
    results = taskyard.enqueue_many(calls)
    assert len({r.enqueued_at for r in results}) == 1  # one transaction, one enqueue time
    fresh = [db.get_result(r.id) for r in results]
    assert [(r.args, r.kwargs) for r in fresh] == [([1, 2], {}), ([3], {"b": 4}), (["x"], {})]
    assert [r.task.priority for r in fresh] == [0, 7, 0]
    assert [r.task.queue_name for r in fresh] == ["default", "other", "default"]
    assert fresh[1].task.run_after == later
    assert fresh[2].task.retries == 2
    assert all(r.enqueued_by == results[0].enqueued_by for r in fresh)
    assert all(r.status is TaskResultStatus.READY for r in fresh)
    row = db.connector.run("get", {"id": fresh[1].id})[0]
    assert db.connector.parse_time(row["available_at"]) == later  # waits for run_after


def test_worker_warns_when_autovacuum_will_not_clean_the_task_table(
    db: DatabaseBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """With autovacuum off, dead rows pile up and claims slow down run after run: a worker
    says so at start (PostgreSQL; SQLite has no autovacuum to turn off)."""
    c = db.connector
    ops = QueueOps(db)
    if c.dialect != "postgresql":
        assert ops.autovacuum_off() is False
        return
    server_on = bool(c.run("autovacuum")[0]["enabled"])  # the table has no option of its own
    with c.write():
        c.run_script("ALTER TABLE taskyard_task SET (autovacuum_enabled = false)")
    try:
        assert ops.autovacuum_off() is True
        with caplog.at_level(logging.WARNING, logger="taskyard.worker"):
            burst(db)
        assert "autovacuum is off for taskyard_task" in caplog.text
    finally:
        with c.write():
            c.run_script("ALTER TABLE taskyard_task RESET (autovacuum_enabled)")
    assert ops.autovacuum_off() is (not server_on)
