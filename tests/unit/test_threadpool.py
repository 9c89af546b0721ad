"""ThreadPool specifics: a bounded pool, close(), and the warning at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import taskyard
from taskyard import TaskResultStatus
from taskyard.config import backends
from tests import tasks


def test_pool_never_exceeds_max_workers() -> None:
    taskyard.configure(url="threadpool:?max_workers=3")
    tasks.GATES["g"] = threading.Event()
    results = [tasks.gate.enqueue("g") for _ in range(8)]
    time.sleep(0.3)
    running = [r for r in results if r.status is TaskResultStatus.RUNNING]
    assert len(running) == 3
    assert len(backends["default"]._threads) == 3  # type: ignore[attr-defined]
    tasks.GATES["g"].set()
    for r in results:
        assert r.wait(5).status is TaskResultStatus.SUCCESSFUL


def test_close_wait_true_runs_everything_pending() -> None:
    taskyard.configure(url="threadpool:?max_workers=2")
    results = [tasks.add.enqueue(i, i) for i in range(50)]
    backends["default"].close(wait=True, timeout=10)  # type: ignore[call-arg]
    assert all(r.status is TaskResultStatus.SUCCESSFUL for r in results)


def test_close_wait_false_cancels_pending() -> None:
    taskyard.configure(url="threadpool:?max_workers=1")
    tasks.GATES["g"] = threading.Event()
    blocker = tasks.gate.enqueue("g")
    while blocker.status is TaskResultStatus.READY:
        time.sleep(0.001)
    pending = [tasks.add.enqueue(1, 1) for _ in range(5)]
    threading.Timer(0.2, tasks.GATES["g"].set).start()
    backends["default"].close(wait=False, timeout=5)  # type: ignore[call-arg]
    assert all(r.status is TaskResultStatus.CANCELLED for r in pending)
    assert blocker.wait(5).status is TaskResultStatus.SUCCESSFUL
    # the backend can be used again afterwards
    assert tasks.add.enqueue(2, 2).wait(5).return_value == 4


def test_wait_times_out_with_a_clear_error() -> None:
    taskyard.configure(url="threadpool:?max_workers=1")
    tasks.GATES["g"] = threading.Event()
    result = tasks.gate.enqueue("g")
    try:
        result.wait(timeout=0.1)
    except TimeoutError as exc:
        assert "had not finished after 0.1s" in str(exc)
    else:
        raise AssertionError("wait() should have timed out")
    finally:
        tasks.GATES["g"].set()


def test_interpreter_exit_warns_about_lost_tasks() -> None:
    script = textwrap.dedent(
        """
        import threading, time, taskyard
        from tests import tasks
        taskyard.configure(url="threadpool:?max_workers=1&shutdown_timeout=0.2")
        tasks.GATES["g"] = threading.Event()
        gate = tasks.gate.enqueue("g", 1.0)
        while gate.status != "RUNNING":
            time.sleep(0.005)
        for i in range(7):
            tasks.add.enqueue(i, i)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "interpreter exiting with 7 pending task(s) that will never run" in done.stderr
    assert "1 running task(s) abandoned" in done.stderr


def test_immediate_refuses_a_dependency_that_is_still_running() -> None:
    taskyard.configure(url="immediate:")
    result = tasks.enqueue_dependent_on_self.enqueue()
    assert result.return_value.startswith("InvalidTask:")
    assert "runs tasks inline so it cannot wait" in result.return_value
    assert backends["default"].unfinished_count() == 0  # type: ignore[attr-defined]
