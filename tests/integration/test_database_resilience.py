"""The faults of issue 11 on the Database backend: what stored rows may import, what counts as
an attempt, outcomes recorded across outages, corrupt rows, bounded waits. SQLite and
PostgreSQL; a few tests start a private PostgreSQL they can stop and freeze."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import taskyard
from taskyard import BackendUnavailable, TaskResultStatus
from taskyard.backends.database import DatabaseBackend
from taskyard.backends.database.rows import result_from_row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.config import backends
from taskyard.tasks import registry
from taskyard.tasks.execution import WATCHDOG, execute, invoke
from taskyard.worker.probes import WorkerHealth
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks
from tests.conftest import skip_or_fail
from tests.integration.conftest import ROOT, WorkerProcess, burst, status_of, wait_for
from tests.servers import PrivatePostgres, postgres_bin

S = TaskResultStatus


def set_column(db: DatabaseBackend, task_id: str, column: str, sql_value: str) -> None:
    c = db.connector
    sql_id = "%(id)s" if c.dialect == "postgresql" else ":id"
    c.connection().execute(
        f"UPDATE taskyard_task SET {column} = {sql_value} WHERE id = {sql_id}", {"id": task_id}
    )


# -- only declared modules are imported ---------------------------------------------------------


def test_rows_cannot_make_a_worker_import_anything(db: DatabaseBackend) -> None:
    for name in ("this", "unittest.__main__"):
        assert name not in sys.modules
    zen = tasks.add.enqueue(1, 1)
    exits = tasks.add.enqueue(1, 2)
    retry_on = tasks.add.enqueue(1, 3)
    fine = tasks.add.enqueue(1, 4)
    set_column(db, zen.id, "task_path", "'this.x'")
    set_column(db, exits.id, "task_path", "'unittest.__main__.main'")
    options = '{"retry_on": ["unittest.__main__.Oops"]}'
    set_column(db, retry_on.id, "options", f"'{options}'")
    worker = burst(db)
    for name in ("this", "unittest.__main__"):
        assert name not in sys.modules, f"{name} was imported"
    for result in (zen, exits, retry_on):
        assert status_of(result) == "FAILED"
        assert "may not import on demand" in result.errors[-1].traceback
    assert status_of(fine) == "SUCCESSFUL"
    assert worker.failed == 3 and worker.can_execute()


def test_readers_never_import_a_rows_module(db: DatabaseBackend) -> None:
    result = tasks.add.enqueue(1, 1)
    set_column(db, result.id, "task_path", "'this.x'")
    registry.allow_imports(["this"])  # even where on-demand imports are allowed
    try:
        read = db.get_result(result.id)
        assert read.task.module_path == "this.x"
        assert read.cancel() is True
        assert status_of(read) == "CANCELLED"
    finally:
        registry.reset_allowed_imports()
    assert "this" not in sys.modules


@pytest.mark.slow
def test_modules_that_exit_on_import_cannot_end_executor_threads(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    exiting = [tasks.add.enqueue(i, i) for i in range(2)]
    for result in exiting:
        set_column(db, result.id, "task_path", "'unittest.__main__.main'")
    later = [tasks.add.using(priority=-1).enqueue(i, 1) for i in range(6)]
    worker = worker_process("--threads", "2", "--allow-import", "unittest", "--health-port", "0")
    wait_for(lambda: all(status_of(r) == "SUCCESSFUL" for r in later), what="the later tasks")
    for result in exiting:
        assert status_of(result) == "FAILED"
        # the first import exits; a thread importing at the same moment may see the module
        # half-initialised, whose ``main`` is not a task: either way nothing runs
        error = result.errors[-1].traceback
        assert "SystemExit" in error or "not a task" in error
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0, worker.output()
    assert time.monotonic() - started < 10


def test_a_worker_whose_executors_died_says_so(db: DatabaseBackend) -> None:
    worker = Worker(db, WorkerConfig(queues=None, handle_signals=False))
    health = WorkerHealth(worker)
    assert health.is_alive() and health.readiness()[0]
    worker.problem = "executor thread taskyard-exec-0 ended"
    assert not health.is_alive()
    assert health.readiness() == (
        False,
        "cannot execute tasks: executor thread taskyard-exec-0 ended",
    )


# -- what counts as an attempt ------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_charges_nothing_to_tasks_that_had_not_started(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    results = [tasks.sleepy.enqueue(3.0, f"t{i}") for i in range(6)]  # retries=0
    first = worker_process("--threads", "2", "--batch-size", "10", "--lease", "2")
    wait_for(
        lambda: [status_of(r) for r in results].count("RUNNING") == 2, what="two tasks to start"
    )
    time.sleep(0.3)
    assert len(QueueOps(db).held_by(first_worker_id(db))) == 2  # claims only what it starts
    first.kill()
    second = worker_process("--threads", "6", "--lease", "2")
    wait_for(
        lambda: all(status_of(r) == "SUCCESSFUL" for r in results), timeout=40, what="the drain"
    )
    interrupted = [r for r in results if r.attempts == 2]
    assert len(interrupted) == 2
    for r in interrupted:
        assert r.errors[0].exception_class_path == "taskyard.exceptions.WorkerLost"
    assert sum(1 for r in results if r.attempts == 1) == 4
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def first_worker_id(db: DatabaseBackend) -> str:
    [worker] = QueueOps(db).workers()
    return str(worker["worker_id"])


@pytest.mark.slow
def test_a_deploy_past_the_shutdown_timeout_interrupts_without_failing(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    long = tasks.sleepy.enqueue(6.0, "long")  # retries=0
    first = worker_process("--threads", "1", "--shutdown-timeout", "1")
    wait_for(lambda: status_of(long) == "RUNNING", what="the task to start")
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 1, first.output()
    assert status_of(long) == "READY"
    assert "shut down (timeout 1s)" in long.errors[-1].traceback
    second = worker_process("--threads", "1")
    wait_for(lambda: status_of(long) == "SUCCESSFUL", timeout=20, what="the re-run")
    assert long.attempts == 2
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def test_interruptions_bound_is_configurable(db_url: str) -> None:
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"URL": db_url, "AUTO_MIGRATE": True, "MAX_INTERRUPTIONS": 0},
            }
        }
    )
    db = backends["default"]
    assert isinstance(db, DatabaseBackend)
    ops = QueueOps(db)
    result = tasks.add.enqueue(1, 1)
    ops.claim("gone", None, 1, 0.05, {})
    time.sleep(0.1)
    [row] = ops.reap_expired()
    assert row["status"] == "FAILED"
    assert "more than MAX_INTERRUPTIONS (0)" in db.get_result(result.id).errors[-1].traceback


def test_interrupted_attempts_do_not_spend_retries(db: DatabaseBackend) -> None:
    ops = QueueOps(db)
    result = tasks.fail.using(retries=1, retry_backoff=0).enqueue("x")
    ops.claim("gone", None, 1, 0.05, {})
    time.sleep(0.1)
    ops.reap_expired()
    burst(db)
    assert status_of(result) == "FAILED"
    # the interrupted attempt, then the first run and its one retry
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == [
        "taskyard.exceptions.WorkerLost",
        "builtins.ValueError",
        "builtins.ValueError",
    ]


# -- outcomes survive an outage -----------------------------------------------------------------


def test_an_outcome_is_recorded_after_its_lease_expired_unless_a_newer_attempt_began(
    db: DatabaseBackend,
) -> None:
    ops = QueueOps(db)
    first, second = tasks.add.enqueue(1, 1), tasks.add.enqueue(2, 2)
    rows = ops.claim("away", None, 2, 0.05, {})
    time.sleep(0.1)
    assert len(ops.reap_expired("someone-else")) == 2  # the database was away: leases expired
    ops.claim("newer", None, 1, 30, {})  # one of them has started again elsewhere
    finished = []
    for row in rows:
        stale = result_from_row(row, db.connector, db, strict=True)
        outcome = execute(stale.task, stale, worker_id="away", sender=DatabaseBackend, claimed=True)
        finished.append(Finished(stale, outcome))
    written = ops.complete("away", finished)
    assert len(written) == 1
    done = first if first.id in written else second
    assert status_of(done) == "SUCCESSFUL" and done.return_value in (2, 4)
    other = second if done is first else first
    assert status_of(other) == "RUNNING" and other.worker_ids[-1] == "newer"


def test_a_worker_does_not_reap_its_own_leases(db: DatabaseBackend) -> None:
    ops = QueueOps(db)
    tasks.add.enqueue(1, 1)
    ops.claim("me", None, 1, 0.05, {})
    time.sleep(0.1)
    assert ops.reap_expired("me") == []
    assert len(ops.reap_expired("other")) == 1


def test_no_false_lost_lease_warning_when_a_task_finishes_meanwhile(
    db: DatabaseBackend, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(db, WorkerConfig(queues=None, handle_signals=False, worker_id="w"))
    tasks.add.enqueue(1, 1)
    [row] = worker.ops.claim("w", None, 1, 30, {})
    from taskyard.worker.stopping import Running

    worker._running[str(row["id"])] = Running(threading.get_ident())
    real_extend = worker.ops.extend_leases

    def finished_meanwhile(worker_id: str, ids: list[str], lease: float) -> dict[str, bool]:
        worker._running.clear()  # the task finished and was recorded in between
        db.connector.connection().execute("UPDATE taskyard_task SET status = 'SUCCESSFUL'")
        return real_extend(worker_id, ids, lease)

    worker.ops.extend_leases = finished_meanwhile  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="taskyard.worker"):
        worker.maintenance.tick()
    assert "no longer holds" not in caplog.text


# -- corrupt rows are set aside -----------------------------------------------------------------


def test_a_row_with_unreadable_bookkeeping_is_set_aside(db: DatabaseBackend) -> None:
    bad = tasks.add.enqueue(1, 1)
    good = [tasks.add.enqueue(i, i) for i in range(5)]
    broken = "'not json{'" if db.dialect == "sqlite" else "'\"a string\"'"
    set_column(db, bad.id, "worker_ids", broken)
    worker = burst(db)
    assert all(status_of(r) == "SUCCESSFUL" for r in good)
    # (PostgreSQL's jsonb would cope with a string, but the row is set aside on both: a worker
    # looks for such rows when it starts)
    assert status_of(bad) == "FAILED"
    assert bad.errors[-1].exception_class_path == "taskyard.exceptions.CorruptTask"
    assert "worker_ids" in bad.errors[-1].traceback
    assert worker.quarantined == 1


def test_a_row_whose_kind_is_neither_sync_nor_async_is_set_aside(db: DatabaseBackend) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's boolean column cannot hold another value")
    bad = tasks.add.enqueue(1, 1)
    good = tasks.add.enqueue(2, 2)
    set_column(db, bad.id, "is_async", "'x'")
    worker = burst(db)
    assert status_of(good) == "SUCCESSFUL"
    assert status_of(bad) == "FAILED"  # it used to stay READY for ever, claimed by no one
    assert "is_async" in bad.errors[-1].traceback
    assert worker.quarantined == 1


def test_a_return_value_too_long_for_json_fails_only_its_task(db: DatabaseBackend) -> None:
    # A task returning 10**5000 crashed `taskyard worker` with a ValueError traceback while it
    # recorded the completion batch: that task and the others finished in the same batch
    # stayed RUNNING (to be run again after the lease, and crash the next worker too).
    huge = tasks.returns_huge_int.enqueue()
    others = [tasks.add.enqueue(i, i) for i in range(3)]
    burst(db, threads=4)
    assert [status_of(r) for r in others] == ["SUCCESSFUL"] * 3
    assert status_of(huge) == "FAILED"
    assert huge.errors[-1].exception_class_path == "taskyard.exceptions.InvalidReturnValue"


def test_an_error_with_a_nul_character_does_not_wedge_completions(db: DatabaseBackend) -> None:
    # PostgreSQL refused the batch holding a traceback with "\x00": the worker retried it
    # forever and no task finished in or after that batch was ever recorded.
    bad = tasks.raises_unstorable_text.enqueue("nul")
    surrogate = tasks.raises_unstorable_text.enqueue("surrogate")
    others = [tasks.add.enqueue(i, i) for i in range(3)]
    worker = Worker(db, WorkerConfig(queues=None, threads=5, burst=True, handle_signals=False))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker kept retrying its completion batch"
    assert [status_of(r) for r in others] == ["SUCCESSFUL"] * 3
    assert (status_of(bad), status_of(surrogate)) == ("FAILED", "FAILED")
    assert "\\x00" in bad.errors[-1].traceback and bad.progress is not None


def test_an_outcome_the_database_refuses_fails_its_own_task_only(db: DatabaseBackend) -> None:
    # Whatever else a database may refuse in one outcome (data no check foresaw) must not
    # wedge the batch: it used to be retried whole, forever, and no later completion was
    # recorded. The refusal is simulated: the database rejects this task's successful outcome.
    bad = tasks.add.enqueue(100, 1)
    others = [tasks.add.enqueue(i, i) for i in range(4)]
    worker = Worker(db, WorkerConfig(queues=None, threads=5, burst=True, handle_signals=False))
    real_complete = worker.ops.complete

    def refusing(worker_id: str, finished: Any) -> set[str]:
        if any(f.result.id == bad.id and f.outcome.status is S.SUCCESSFUL for f in finished):
            raise taskyard.exceptions.CorruptTask("the database refused a task's data")
        return real_complete(worker_id, finished)

    worker.ops.complete = refusing  # type: ignore[method-assign]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker kept retrying its completion batch"
    assert [status_of(r) for r in others] == ["SUCCESSFUL"] * 4
    assert status_of(bad) == "FAILED"
    assert bad.errors[-1].exception_class_path == "taskyard.exceptions.CorruptTask"
    assert "could not be stored" in bad.errors[-1].traceback


def test_a_priority_that_is_not_a_number_strands_no_claim(db: DatabaseBackend) -> None:
    # SQLite keeps text in an INTEGER column: such a row sorts first, the claim committed the
    # batch as RUNNING and then sorting it in Python raised, so every task of that batch stayed
    # RUNNING under this worker's (renewed) lease and never ran; a burst worker exited at once.
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's integer column cannot hold text")
    bad = tasks.add.enqueue(1, 1)
    good = [tasks.add.enqueue(i, i) for i in range(4)]
    set_column(db, bad.id, "priority", "'abc'")
    burst(db, threads=3, batch_size=10)
    assert [status_of(r) for r in good] == ["SUCCESSFUL"] * 4
    assert status_of(bad) in ("SUCCESSFUL", "FAILED")


def test_unreadable_errors_of_running_tasks_do_not_block_completions(
    db: DatabaseBackend,
) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's jsonb columns cannot hold text that is not JSON")
    failing = [tasks.gate_then_fail.enqueue(f"g{i}") for i in range(3)]
    worker = Worker(
        db, WorkerConfig(queues=None, threads=3, interval=0.05, lease=5, handle_signals=False)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: all(status_of(r) == "RUNNING" for r in failing), what="the tasks")
        set_column(db, failing[0].id, "errors", "'not json{'")
        for i in range(3):
            tasks.GATES.setdefault(f"g{i}", threading.Event()).set()
        wait_for(lambda: all(status_of(r) == "FAILED" for r in failing), what="the outcomes")
        later = tasks.add.enqueue(1, 1)
        wait_for(lambda: status_of(later) == "SUCCESSFUL", what="work after that")
    finally:
        worker.stop()
        thread.join(15)
    paths = [e.exception_class_path for e in failing[0].errors]
    assert paths == ["taskyard.exceptions.CorruptTask", "builtins.RuntimeError"]


def test_stored_data_of_the_wrong_shape_is_set_aside_on_both_dialects(
    db: DatabaseBackend,
) -> None:
    bad = tasks.add.enqueue(1, 1)
    set_column(db, bad.id, "kwargs", "'[1, 2]'")
    [row] = QueueOps(db).quarantine()
    assert str(row["id"]) == bad.id and row["status"] == "FAILED"
    result = db.get_result(bad.id)
    assert result.kwargs == {} and "kwargs" in result.errors[-1].traceback


# -- bounded waits --------------------------------------------------------------------------------


def test_sqlite_enqueue_waits_for_a_held_lock_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "OPTIONS": {"URL": url, "BUSY_TIMEOUT": 1.0, "AUTO_MIGRATE": True},
            }
        }
    )
    tasks.add.enqueue(1, 1)  # creates the file and the schema
    holder = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            tasks.add.enqueue(1, 2)
        waited = time.monotonic() - started
        assert 0.9 < waited < 1.8, waited
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with PrivatePostgres() as server:
        yield server


def configure_pg(url: str, **options: Any) -> DatabaseBackend:
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"URL": url, "AUTO_MIGRATE": True, **options},
            }
        }
    )
    db = backends["default"]
    assert isinstance(db, DatabaseBackend)
    db.migrate()
    return db


@pytest.mark.slow
def test_a_frozen_postgresql_gives_the_caller_backend_unavailable(
    private_pg: PrivatePostgres,
) -> None:
    configure_pg(private_pg.url, STATEMENT_TIMEOUT=1.0, CONNECT_TIMEOUT=2)
    tasks.add.enqueue(1, 1)
    private_pg.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="did not answer"):
            tasks.add.enqueue(1, 2)
        assert time.monotonic() - started < 1.0 + 2.0 + 1.0
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):  # a new connection: the connect timeout
            tasks.add.enqueue(1, 3)
        assert time.monotonic() - started < 2.0 + 1.5
    finally:
        private_pg.thaw()
    assert status_of(tasks.add.enqueue(1, 4)) == "READY"


@pytest.mark.slow
def test_an_outage_longer_than_the_lease_discards_no_success(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    db = configure_pg(private_pg.url)
    results = [tasks.sleepy.enqueue(0.5, f"t{i}") for i in range(12)]
    worker = WorkerProcess(private_pg.url, "--threads", "4", "--lease", "2", log=tmp_path / "w.log")
    try:
        wait_for(
            lambda: sum(status_of(r) == "SUCCESSFUL" for r in results) >= 2,
            timeout=20,
            what="the drain to start",
        )
        db.close()
        private_pg.stop("immediate")
        time.sleep(6)  # three leases
        private_pg.start()
        wait_for(
            lambda: all(status_of(r) == "SUCCESSFUL" for r in results),
            timeout=60,
            what="the drain to finish",
        )
        assert all(r.attempts == 1 for r in results), [r.attempts for r in results]
        assert "was not recorded" not in worker.output()
    finally:
        worker.stop()


def test_the_timeout_watchdog_survives_absurd_deadlines() -> None:
    token = WATCHDOG.arm(threading.get_ident(), 1e10)
    try:
        with pytest.raises(taskyard.TaskTimeout):
            invoke(lambda: [time.sleep(0.01) for _ in range(300)], [], {}, 0.2, False)
    finally:
        WATCHDOG.disarm(token)


def test_cli_refuses_a_bad_allow_import_prefix() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "taskyard", "worker", "--url", "dummy:", "--allow-import", "a b"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "'a b' is not a module name" in proc.stderr


@pytest.mark.slow
def test_a_child_in_process_mode_claims_no_more_than_it_can_start(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    results = [tasks.sleepy.enqueue(4.0, f"t{i}") for i in range(3)]
    worker = worker_process("--processes", "3")
    try:
        wait_for(
            lambda: all(status_of(r) == "RUNNING" for r in results),
            timeout=20,
            what="all three tasks running at once, one per child",
        )
        assert len({r.worker_ids[-1] for r in results}) == 3
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait(30)


def test_liveness_allows_a_loop_waiting_out_the_database_bounds(db: DatabaseBackend) -> None:
    # A turn of the loop may wait out two bounded round trips (a frozen database); liveness
    # used to turn 503 after 10 s — less than one PostgreSQL round trip's bound (12 s) — so an
    # orchestrator restarted healthy workers during every database freeze.
    worker = Worker(db, WorkerConfig(queues=None, handle_signals=False))
    health = WorkerHealth(worker)
    worker.loop_seen = time.monotonic() - 20
    assert health.is_alive()
    worker.loop_seen = time.monotonic() - 120
    assert not health.is_alive()


@pytest.mark.slow
def test_a_frozen_postgresql_leaves_the_worker_alive_and_not_ready(
    private_pg: PrivatePostgres,
) -> None:
    db = configure_pg(private_pg.url)
    worker = Worker(db, WorkerConfig(queues=None, lease=3, interval=0.2, handle_signals=False))
    health = WorkerHealth(worker)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.state == "running", what="the worker")
        private_pg.freeze()
        alive, ready = [], []
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:
            alive.append(health.is_alive())
            ready.append(health.readiness()[0])
            time.sleep(0.5)
        private_pg.thaw()
        assert all(alive), "liveness turned 503 while the loop waited on a frozen database"
        assert not ready[-1]
        wait_for(lambda: health.readiness()[0], timeout=30, what="readiness after the thaw")
        assert status_of(tasks.add.enqueue(1, 1)) in ("READY", "RUNNING", "SUCCESSFUL")
    finally:
        private_pg.thaw()
        worker.stop()
        thread.join(30)
