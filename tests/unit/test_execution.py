"""Shared execution semantics: backoff, timeouts on each path, hooks and the lifecycle log."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

import taskyard
from taskyard import TaskResultStatus, TaskTimeout
from taskyard.tasks import execution
from taskyard.tasks.execution import backoff_delay, invoke
from tests import tasks


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    task = tasks.add.using(retry_backoff=2, retry_backoff_max=30)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (40, 30)]:
        delays = [backoff_delay(task, attempt) for _ in range(200)]
        assert all(full * 0.5 <= d <= full for d in delays)
        assert max(delays) - min(delays) > 0  # jittered
    assert backoff_delay(tasks.add.using(retry_backoff=0), 3) == 0.0


def slow_loop(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


def test_watchdog_timeout_in_a_thread() -> None:
    box: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            invoke(slow_loop, [5.0], {}, 0.2, False)
        except TaskTimeout as exc:
            box["error"] = exc
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert "timeout of 0.2s" in str(box["error"])
    assert box["elapsed"] < 1.5


def test_watchdog_does_not_fire_after_a_fast_call() -> None:
    def run() -> None:
        for _ in range(200):
            assert invoke(lambda: 1, [], {}, 0.05, False) == 1
        time.sleep(0.2)  # any stray timeout would be raised here

    thread = threading.Thread(target=run)
    errors: list[BaseException] = []
    thread.run = lambda: _capture(run, errors)  # type: ignore[method-assign]
    thread.start()
    thread.join(5)
    assert errors == []


def _capture(fn: Any, errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)


def test_alarm_timeout_interrupts_a_blocking_sleep_on_the_main_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal

    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        assert execution._can_use_alarm()
        started = time.monotonic()
        with pytest.raises(TaskTimeout, match="timeout of 0.2s"):
            invoke(time.sleep, [5], {}, 0.2, False)
        assert time.monotonic() - started < 1.5
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_lifecycle_log_has_one_line_per_transition(caplog: pytest.LogCaptureFixture) -> None:
    taskyard.configure(url="immediate:")
    with caplog.at_level(logging.DEBUG, logger="taskyard.tasks"):
        tasks.flaky.enqueue(2)
    lines = [r.getMessage().split(" id=")[0] for r in caplog.records if r.name == "taskyard.tasks"]
    assert lines == [
        "task enqueued",
        "task started",
        "task will retry",
        "task started",
        "task succeeded",
    ]


def test_failing_hook_receiver_does_not_change_the_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    taskyard.configure(url="immediate:")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    taskyard.task_finished.connect(broken)
    try:
        result = tasks.add.enqueue(1, 1)
    finally:
        taskyard.task_finished.disconnect(broken)
    assert result.status is TaskResultStatus.SUCCESSFUL
    assert "receiver bug" in caplog.text


def test_system_exit_in_a_task_is_a_failure_not_an_exit() -> None:
    taskyard.configure(url="immediate:")
    result = tasks.echo.using().enqueue()
    assert result.status is TaskResultStatus.SUCCESSFUL
    from taskyard.tasks.execution import record_failure

    record_failure(tasks.echo, result, SystemExit(3))
    assert result.errors[-1].exception_class_path == "builtins.SystemExit"


def test_interrupted_attempts_do_not_use_up_retries() -> None:
    """An attempt stopped by its worker's death or shutdown (recorded as WorkerLost) is not a
    failure: a later failure still gets the task's retries (issue 11, item 5)."""
    from taskyard.exceptions import WorkerLost
    from taskyard.tasks.execution import error_from_exception, interruptions, record_failure
    from taskyard.tasks.results import TaskResult

    task = tasks.add.using(retries=1, retry_backoff=0)
    result: TaskResult[int] = TaskResult(
        task=task, id="x", status=TaskResultStatus.RUNNING, args=[], kwargs={}, backend="default"
    )
    result._worker_ids = ["a", "b"]  # attempt 1 was interrupted, attempt 2 is failing now
    result._errors = [error_from_exception(WorkerLost("interrupted"))]
    assert interruptions(result) == 1
    assert record_failure(task, result, ValueError("x")).will_retry  # one failure, one retry
    result._worker_ids.append("c")
    assert not record_failure(task, result, ValueError("y")).will_retry  # the second failure


def test_worker_interrupted_leaves_the_attempt_to_the_worker() -> None:
    """A shutdown that stops a running task is not the task's failure: execute() lets the
    worker's WorkerInterrupted through instead of recording it."""
    from taskyard.exceptions import WorkerInterrupted
    from taskyard.tasks.execution import execute
    from taskyard.tasks.results import TaskResult

    result: TaskResult[str] = TaskResult(
        task=tasks.raises_worker_interrupted,
        id="y",
        status=TaskResultStatus.READY,
        args=[],
        kwargs={},
        backend="default",
    )
    with pytest.raises(WorkerInterrupted):
        execute(tasks.raises_worker_interrupted, result, worker_id="w", sender=object)
    assert result.errors == []
