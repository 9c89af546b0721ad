"""Fault tests of the Database backend and ``taskyard worker``, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import taskyard
from taskyard import BackendUnavailable, TaskLimitError, TaskResultStatus
from taskyard.backends.database import DatabaseBackend
from taskyard.backends.database.rows import result_from_row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.tasks.execution import execute
from tests import tasks
from tests.integration.conftest import WorkerProcess, burst, status_of, wait_for

S = TaskResultStatus


def test_sigkill_mid_task_runs_again_within_the_lease(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    result = tasks.slow_first_attempt.enqueue(60)
    first = worker_process("--lease", "2", "--threads", "1")
    wait_for(lambda: status_of(result) == "RUNNING", what="the first attempt to start")
    first.kill()
    killed_at = time.monotonic()
    second = worker_process("--lease", "2", "--threads", "1")
    wait_for(lambda: status_of(result) == "SUCCESSFUL", timeout=20, what="the retry")
    reclaimed_after = time.monotonic() - killed_at
    assert reclaimed_after < 2 * 2 + 3  # lease expiry + one maintenance period + start-up
    assert result.attempts == 2
    assert result.return_value == 2
    assert result.errors[0].exception_class_path == "taskyard.exceptions.WorkerLost"
    assert "stopped renewing its lease" in result.errors[0].traceback
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def test_warm_shutdown_finishes_running_and_claims_only_what_it_starts(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    results = [tasks.sleepy.enqueue(1.0, f"t{i}") for i in range(5)]
    worker = worker_process("--threads", "1", "--batch-size", "5")
    wait_for(lambda: any(status_of(r) == "RUNNING" for r in results), what="a task to start")
    time.sleep(0.2)
    # one free thread: one claim, whatever the batch size (a claim is a started attempt)
    assert [status_of(r) for r in results].count("RUNNING") == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output()
    statuses = [status_of(r) for r in results]
    assert statuses.count("SUCCESSFUL") == 1
    untouched = [r for r in results if r.status is S.READY]
    assert len(untouched) == 4 and all(r.attempts == 0 and r.worker_ids == [] for r in untouched)


def test_cold_shutdown_gives_up_running_tasks_and_exits_non_zero(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    results = [tasks.sleepy.enqueue(5.0, f"t{i}") for i in range(3)]
    worker = worker_process("--threads", "1", "--batch-size", "3")
    wait_for(lambda: any(status_of(r) == "RUNNING" for r in results), what="a task to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait() != 0
    assert time.monotonic() - started < 3  # the task on the main thread is interrupted at once
    for r in results:
        assert status_of(r) == "READY"  # retries=0: an interrupted attempt still runs again
    [abandoned] = [r for r in results if r.attempts == 1]
    assert "cold" in abandoned.errors[-1].traceback
    assert "it will run again" in abandoned.errors[-1].traceback
    assert sum(1 for r in results if r.attempts == 0) == 2


def test_poison_task_is_interrupted_up_to_the_bound_and_the_supervisor_survives(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    poisoned = tasks.poison.using(retries=0).enqueue()
    fine = tasks.add.using(priority=-10).enqueue(1, 1)
    worker = worker_process("--processes", "1", "--burst")
    assert worker.wait(90) == 0, worker.output()
    assert status_of(poisoned) == "FAILED"
    assert poisoned.attempts == 4  # the first run and MAX_INTERRUPTIONS (3) more
    assert all(e.exception_class_path == "taskyard.exceptions.WorkerLost" for e in poisoned.errors)
    assert "exit code 13" in poisoned.errors[-1].traceback
    assert "more than MAX_INTERRUPTIONS (3)" in poisoned.errors[-1].traceback
    assert status_of(fine) == "SUCCESSFUL"


def test_process_mode_interrupts_a_blocking_call_at_the_timeout(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    stuck = tasks.blocks_in_c.enqueue(30)
    started = time.monotonic()
    worker = worker_process("--processes", "1", "--burst")
    assert worker.wait(60) == 0, worker.output()
    assert time.monotonic() - started < 20
    assert status_of(stuck) == "FAILED"
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert stuck.attempts == 1


@pytest.mark.slow
def test_process_mode_replaces_a_child_whose_task_ignores_its_timeout(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    stuck = tasks.ignores_alarm.enqueue(30)
    later = tasks.add.using(priority=-10).enqueue(2, 3)
    started = time.monotonic()
    worker = worker_process("--processes", "1", "--burst")
    assert worker.wait(60) == 0, worker.output()
    assert time.monotonic() - started < 25
    assert status_of(stuck) == "FAILED"
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert status_of(later) == "SUCCESSFUL" and later.attempts == 1


@pytest.mark.slow
def test_thread_mode_replaces_its_process_when_a_task_cannot_be_stopped(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    """time.sleep() in a worker thread cannot be interrupted: the worker records TaskTimeout,
    hands the other running task back uncharged and runs its command line again."""
    stuck = tasks.blocks_in_c.enqueue(60)
    other = tasks.sleepy.using(priority=-1).enqueue(8.0, "other")
    started = time.monotonic()
    worker = worker_process("--threads", "2", "--burst")
    assert worker.wait(60) == 0, worker.output()
    output = worker.output()
    assert time.monotonic() - started < 40
    assert "re-executing" in output
    assert status_of(stuck) == "FAILED" and stuck.attempts == 1
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert "could not be interrupted" in stuck.errors[-1].traceback
    assert status_of(other) == "SUCCESSFUL" and other.attempts == 2
    assert "replaced because another task" in other.errors[0].traceback


def test_rows_naming_non_tasks_fail_without_running(db: DatabaseBackend, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tasks.echo.enqueue(f"touch {marker}")
    missing = tasks.echo.enqueue()
    corrupt = tasks.echo.enqueue()
    plain = tasks.not_a_task.__module__ + ".not_a_task"
    fine = tasks.add.enqueue(2, 2)
    c = db.connector
    sql_id = "%(id)s" if c.dialect == "postgresql" else ":id"
    for result, path in [(evil, "os.system"), (missing, "no_such_module.task"), (corrupt, plain)]:
        c.connection().execute(
            f"UPDATE taskyard_task SET task_path = '{path}' WHERE id = {sql_id}", {"id": result.id}
        )
    bad_args = "'\"a string\"'" if c.dialect == "postgresql" else "'not json at all'"
    c.connection().execute(
        f"UPDATE taskyard_task SET args = {bad_args}, task_path = 'tests.tasks.echo' "
        f"WHERE id = {sql_id}",
        {"id": corrupt.id},
    )
    worker = burst(db)
    assert not marker.exists()
    assert status_of(evil) == "FAILED" and "'os.system' is a" in evil.errors[-1].traceback
    assert status_of(missing) == "FAILED"
    assert "may not import on demand" in missing.errors[-1].traceback
    assert status_of(corrupt) == "FAILED"
    # unreadable arguments: set aside when the worker starts, not run
    assert corrupt.errors[-1].exception_class_path == "taskyard.exceptions.CorruptTask"
    assert status_of(fine) == "SUCCESSFUL"
    assert (worker.failed, worker.quarantined) == (2, 1)


def test_unreachable_database_at_enqueue_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    for url in [
        "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2",
        f"sqlite:///{tmp_path}/file/queue.db",
    ]:
        taskyard.configure(
            {
                "default": {
                    "BACKEND": "taskyard.backends.database.DatabaseBackend",
                    "OPTIONS": {"URL": url.split("?")[0], "AUTO_MIGRATE": False},
                }
            }
        )
        with pytest.raises(BackendUnavailable):
            tasks.add.enqueue(1, 2)


def test_a_new_sqlite_file_opens_while_another_process_writes_to_it(tmp_path: Path) -> None:
    """Two processes starting on one new file (a worker and ``taskyard cron``, say): SQLite
    refuses the switch to WAL at once while the other writes, instead of waiting; the connector
    waits for it."""
    import sqlite3

    from taskyard.backends.database.sqlite import SQLiteConnector

    path = tmp_path / "queue.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE migrating (n integer)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO migrating VALUES (1)")
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()
    connector = SQLiteConnector(f"sqlite:///{path}", {"BUSY_TIMEOUT": 5})
    started = time.monotonic()
    conn = connector.connection()
    assert 0.2 < time.monotonic() - started < 5
    assert conn.execute("PRAGMA journal_mode").fetchone()["journal_mode"] == "wal"
    other.close()


def test_two_workers_never_run_the_same_attempt(db: DatabaseBackend) -> None:
    results = taskyard.enqueue_many(tasks.record.prepare(f"n{i}") for i in range(400))
    workers = [
        threading.Thread(target=burst, args=(db,), kwargs={"worker_id": f"w{i}", "batch_size": 7})
        for i in range(3)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert sorted(tasks.RUN_LOG) == sorted(f"n{i}" for i in range(400))
    for r in results[:20]:
        assert status_of(r) == "SUCCESSFUL" and r.attempts == 1


def test_limit_is_atomic_under_concurrent_enqueuers(db: DatabaseBackend) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def enqueue() -> None:
        barrier.wait()
        try:
            tasks.unique_job.enqueue("x")
            outcomes.append("ok")
        except TaskLimitError:
            outcomes.append("limit")

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["limit"] * 7 + ["ok"]


def test_reaped_attempt_cannot_overwrite_the_next_one(db: DatabaseBackend) -> None:
    ops = QueueOps(db)
    result = tasks.add.using(retries=2).enqueue(1, 1)
    [row] = ops.claim("old-worker", None, 1, 0.05, {})
    time.sleep(0.1)
    assert [r["status"] for r in ops.reap_expired()] == ["READY"]
    [again] = ops.claim("new-worker", None, 1, 30, {})
    assert again["attempts"] == 2
    stale = result_from_row(row, db.connector, db)
    outcome = execute(
        stale.task, stale, worker_id="old-worker", sender=DatabaseBackend, claimed=True
    )
    assert ops.complete("old-worker", [Finished(stale, outcome)]) == set()
    result.refresh()
    assert result.status is S.RUNNING and result.worker_ids == ["old-worker", "new-worker"]


def test_expired_leases_run_again_until_the_interruption_bound(db: DatabaseBackend) -> None:
    ops = QueueOps(db)
    result = tasks.add.enqueue(1, 1)  # retries=0: interruptions are not retries
    for n in range(4):
        [row] = ops.claim(f"gone-{n}", None, 1, 0.05, {})
        assert row["attempts"] == n + 1
        time.sleep(0.1)
        [reaped] = ops.reap_expired()
        assert reaped["status"] == ("READY" if n < 3 else "FAILED")
    assert status_of(result) == "FAILED"
    assert result.attempts == 4
    assert result.errors[-1].exception_class_path == "taskyard.exceptions.WorkerLost"
    assert "more than MAX_INTERRUPTIONS (3)" in result.errors[-1].traceback
