"""Async tasks on ``taskyard worker``'s event loop: concurrency bounds, mixing with threads,
shutdown with coroutines in flight, a coroutine that blocks the loop, metrics. SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
import signal
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

from taskyard import TaskResultStatus
from taskyard.backends.database import DatabaseBackend
from taskyard.worker.health import HealthServer
from taskyard.worker.probes import WorkerHealth
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks
from tests.integration.conftest import WorkerProcess, burst, status_of, wait_for

S = TaskResultStatus


def max_overlap(spans: list[list[float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_async_concurrency_bounds_the_coroutines_in_flight(db: DatabaseBackend) -> None:
    results = [tasks.async_span.enqueue(0.3) for _ in range(20)]
    burst(db, threads=1, async_concurrency=5)
    spans = [r.return_value for r in results if status_of(r) == "SUCCESSFUL"]
    assert len(spans) == 20
    assert 3 <= max_overlap(spans) <= 5


def test_async_concurrency_zero_runs_async_tasks_on_the_threads(db: DatabaseBackend) -> None:
    results = [tasks.async_span.enqueue(0.2) for _ in range(4)]
    worker = burst(db, async_concurrency=0, threads=2)
    assert worker.runner is None
    spans = [r.return_value for r in results if status_of(r) == "SUCCESSFUL"]
    assert len(spans) == 4 and max_overlap(spans) == 2


def test_async_tasks_run_beside_a_long_sync_task(db: DatabaseBackend) -> None:
    slow = tasks.sleepy.enqueue(1.5, "sync")
    quick = [tasks.async_span.enqueue(0.2) for _ in range(10)]
    burst(db, threads=1)
    assert status_of(slow) == "SUCCESSFUL"
    ends = [r.return_value[1] for r in quick if status_of(r) == "SUCCESSFUL"]
    assert len(ends) == 10
    assert slow.finished_at is not None
    assert max(ends) < slow.finished_at.timestamp()  # none waited for the thread


def test_a_coroutine_that_blocks_the_loop_is_reported(
    db: DatabaseBackend, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tasks.async_blocks_the_loop.enqueue(1.2)
    others = [tasks.async_span.enqueue(0.1) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="taskyard.worker"):
        worker = burst(db, threads=1)
    assert status_of(blocker) == "SUCCESSFUL"
    assert all(status_of(r) == "SUCCESSFUL" for r in others)
    assert worker.runner is not None and worker.runner.blocked_total >= 1
    assert f"task {blocker.id} (async_blocks_the_loop)" in caplog.text
    assert "blocked" in caplog.text


def test_async_progress_is_stored_while_the_task_runs(db: DatabaseBackend) -> None:
    result = tasks.async_with_progress.enqueue(3, 1.0)
    worker = Worker(
        db, WorkerConfig(queues=None, threads=1, interval=0.05, lease=3, handle_signals=False)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: status_of(result) == "RUNNING" and result.progress is not None,
            timeout=10,
            what="progress of the running coroutine",
        )
        assert result.progress is not None and result.progress.total == 3
        wait_for(lambda: status_of(result) == "SUCCESSFUL", timeout=10, what="the task")
    finally:
        worker.stop()
        thread.join(10)


def test_metrics_report_the_event_loop(db: DatabaseBackend) -> None:
    worker = Worker(db, WorkerConfig(queues=None, interval=0.05, handle_signals=False))
    server = HealthServer(WorkerHealth(worker), 0).start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        result = tasks.async_add.enqueue(1, 2)
        wait_for(lambda: status_of(result) == "SUCCESSFUL", what="the task")
        url = f"http://127.0.0.1:{server.port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for name in (
            "taskyard_worker_async_in_flight",
            "taskyard_worker_loop_lag_seconds",
            "taskyard_worker_loop_blocked_total",
        ):
            assert name in text
    finally:
        server.stop()
        worker.stop()
        thread.join(10)


@pytest.mark.slow
def test_warm_shutdown_lets_coroutines_finish_then_hands_the_rest_back(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    short = [tasks.async_span.enqueue(0.5) for _ in range(5)]
    long = [tasks.async_sleeps.enqueue(30.0) for _ in range(5)]
    worker = worker_process("--threads", "1", "--shutdown-timeout", "2")
    wait_for(lambda: all(status_of(r) == "RUNNING" for r in long), timeout=15, what="coroutines")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 1, worker.output()
    assert all(status_of(r) == "SUCCESSFUL" for r in short)
    for result in long:
        assert status_of(result) == "READY"  # interrupted: runs again elsewhere
        assert "shut down (timeout 2s)" in result.errors[-1].traceback


@pytest.mark.slow
def test_a_coroutine_that_blocks_past_its_timeout_gets_its_process_replaced(
    db: DatabaseBackend, worker_process: Callable[..., WorkerProcess]
) -> None:
    stuck = tasks.async_blocks_the_loop.using(timeout=0.5).enqueue(60)
    fine = tasks.async_add.using(priority=-1).enqueue(2, 2)
    started = time.monotonic()
    worker = worker_process("--burst")
    assert worker.wait(60) == 0, worker.output()
    assert time.monotonic() - started < 40
    assert status_of(stuck) == "FAILED"
    assert stuck.errors[-1].exception_class_path == "taskyard.exceptions.TaskTimeout"
    assert status_of(fine) == "SUCCESSFUL"
