"""Executing claimed tasks: the executor threads' loop (sync tasks) and the hand-over to the
event loop (async tasks). Whatever a task does, and whatever a stored row names, its outcome is
queued for recording and the executor carries on. Part of ``Worker`` (a mixin over its state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskyard.backends.database.claimed import cannot_run, open_claimed
from taskyard.backends.database.connectors import Row
from taskyard.backends.database.worker_ops import Finished
from taskyard.exceptions import WorkerInterrupted
from taskyard.tasks.execution import Outcome, execute, fail_without_running
from taskyard.tasks.loop import AsyncRunner, Start
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.worker.control import DatabaseControl
from taskyard.worker.stopping import STUCK_GRACE, Running

if TYPE_CHECKING:
    from taskyard.backends.database.backend import DatabaseBackend
    from taskyard.backends.database.worker_ops import QueueOps
    from taskyard.worker.worker import WorkerConfig

logger = logging.getLogger("taskyard.worker")


class Executing:
    """The executing half of ``Worker``."""

    backend: DatabaseBackend
    config: WorkerConfig
    ops: QueueOps
    worker_id: str
    runner: AsyncRunner | None
    problem: str | None
    processed: int
    succeeded: int
    failed: int
    started_count: int
    _cond: threading.Condition
    _work: threading.Condition
    _buffer: deque[Row]
    _running: dict[str, Running]
    _finished: list[Finished]
    _on_loop: int
    _done: threading.Event
    _cold: threading.Event
    _on_start: Callable[[TaskResult[Any], float | None], None] | None
    _on_end: Callable[[TaskResult[Any]], None] | None

    def _execute_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._buffer and not self._done.is_set():
                        self._work.wait()
                    if self._done.is_set() or self._cold.is_set():
                        return
                    row = self._buffer.popleft()
                    task_id = str(row["id"])
                    self._running[task_id] = Running(threading.get_ident())
                    self.started_count += 1
                self._run_one(task_id, row)
        except WorkerInterrupted:
            return  # stopping at once: _shutdown hands the running attempt back
        finally:
            if not self._done.is_set() and not self._cold.is_set():
                self.problem = f"executor thread {threading.current_thread().name} ended"
                logger.critical("worker %s: %s unexpectedly", self.worker_id, self.problem)
            if threading.current_thread() is not threading.main_thread():
                self.ops.c.thread_done()

    def _run_one(self, task_id: str, row: Row) -> None:
        """Run one claimed row. Whatever happens, its outcome is queued for recording; only
        ``WorkerInterrupted`` (an immediate stop) escapes, leaving the attempt to be handed back."""
        result: TaskResult[Any] | None = None
        outcome: Outcome | None = None
        try:
            claimed = open_claimed(row, self.backend, self.worker_id)
            task, result = claimed.task, claimed.result
            if claimed.failed is not None or task is None:
                outcome = claimed.failed or Outcome(TaskResultStatus.FAILED)
                return
            with self._cond:
                entry = self._running[task_id]
                entry.result, entry.task = result, task
                if task.timeout is not None:
                    entry.stuck_after = time.monotonic() + task.timeout + STUCK_GRACE
            self._notify(self._on_start, result, task.timeout)
            control = DatabaseControl(self.ops, self.worker_id, self.config.lease)
            outcome = execute(
                task,
                result,
                worker_id=self.worker_id,
                sender=type(self.backend),
                control=control,
                claimed=True,
            )
            self._notify(self._on_end, result)
        except WorkerInterrupted:
            raise
        except BaseException as exc:  # a bug, or something hostile: never end the executor
            logger.exception("worker %s: task %s: unexpected error", self.worker_id, task_id)
            if outcome is None:
                if result is None:
                    result = cannot_run(row, self.backend, self.worker_id, exc).result
                else:
                    fail_without_running(result, exc)
                outcome = Outcome(TaskResultStatus.FAILED, exception=exc)
        finally:
            if result is not None and outcome is not None:
                self._record(result, outcome)

    def _notify(self, callback: Callable[..., None] | None, *args: Any) -> None:
        """Call an ``on_start``/``on_end`` observer; its failure never changes an outcome."""
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("worker %s: observer %r failed", self.worker_id, callback)

    def _record(self, result: TaskResult[Any], outcome: Outcome) -> None:
        with self._cond:
            entry = self._running.pop(result.id, None)
            if entry is not None and entry.on_loop:
                self._on_loop -= 1
            if entry is not None and entry.given_up:
                logger.warning(
                    "task %s: attempt %d ended (%s) after this worker gave it up; not recorded",
                    result.id,
                    result.attempts,
                    outcome.status.value,
                )
                return
            self._finished.append(Finished(result, outcome))
            self.processed += 1
            if outcome.status is TaskResultStatus.FAILED:
                self.failed += 1
            elif outcome.status is TaskResultStatus.SUCCESSFUL:
                self.succeeded += 1
            self._cond.notify_all()

    def _start_on_loop(self, runner: AsyncRunner, row: Row) -> Start | None:
        """Prepare a claimed async task for the event loop (on the claim loop's thread)."""
        task_id = str(row["id"])
        claimed = open_claimed(row, self.backend, self.worker_id)
        task, result = claimed.task, claimed.result
        with self._cond:
            self.started_count += 1
            entry = self._running[task_id] = Running(
                runner.thread_id or 0, result, task, on_loop=True
            )
            self._on_loop += 1
            if task is not None and task.timeout is not None:
                entry.stuck_after = time.monotonic() + task.timeout + STUCK_GRACE
        if claimed.failed is not None or task is None:
            self._loop_done(result, claimed.failed or Outcome(TaskResultStatus.FAILED), None)
            return None
        self._notify(self._on_start, result, task.timeout)
        sender = type(self.backend)
        return Start(
            task_id,
            task,
            result,
            lambda: runner.execute(
                task, result, worker_id=self.worker_id, sender=sender, claimed=True
            ),
            self._loop_done,
        )

    def _loop_done(
        self, result: TaskResult[Any], outcome: Outcome | None, error: BaseException | None
    ) -> None:
        """An async attempt ended (on the loop thread): queue its outcome for recording."""
        if outcome is None and error is None:  # given up by a stopping worker
            with self._cond:
                if self._running.pop(result.id, None) is not None:
                    self._on_loop -= 1
                self._cond.notify_all()
            return
        if error is not None:
            logger.error(
                "worker %s: task %s: unexpected error: %r", self.worker_id, result.id, error
            )
            fail_without_running(result, error)
            outcome = Outcome(TaskResultStatus.FAILED, exception=error)
        assert outcome is not None
        self._notify(self._on_end, result)
        self._record(result, outcome)
