"""``DummyBackend``: records enqueued tasks and never runs them on its own. For unit tests.

It accepts every option so production code can be tested unchanged, and keeps the results in
``backend.results``. ``taskyard.testing`` asserts on them and runs them on demand
(``run_enqueued()``), honouring priority, ``run_after``, ``depends_on``, ``limit``, retries
(run back to back, without the backoff sleep) and timeouts.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.memory import InMemoryBackend
from taskyard.exceptions import TaskCancelled
from taskyard.tasks.execution import announce_outcome, execute, record_failure, utcnow
from taskyard.tasks.hooks import announce_finished, running_inline
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.tasks.task import Task

READY = TaskResultStatus.READY


class DummyBackend(InMemoryBackend):
    """Keep every enqueued result in memory, run nothing until told to."""

    supports_defer = True
    supports_priority = True
    supports_async_task = True
    supports_retries = True
    supports_timeout = True
    supports_qualifiers = True

    worker_id = "dummy"

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self._max_results = sys.maxsize
        self._retry_at: dict[str, datetime] = {}

    @property
    def results(self) -> list[TaskResult[Any]]:
        """Every result enqueued since the last ``clear()``, oldest first."""
        with self._lock:
            return list(self._results.values())

    def clear(self) -> None:
        """Forget every result."""
        with self._lock:
            self._results.clear()
            self._finished_order.clear()
            self._limit_counts.clear()
            self._waiting.clear()
            self._retry_at.clear()
            self._unfinished = 0

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        return self._accept(task, args, kwargs)[0]

    def cancel(self, result: TaskResult[Any]) -> bool:
        with self._lock:
            stored = self.get_result(result.id)
            if stored.is_finished:
                return False
            if stored.status is not READY:
                stored._cancel_requested = True
                return True
            record_failure(stored.task, stored, _cancelled_error(), cancel_requested=True)
            self._finish(stored)
            cascade = self._dependency_done(stored)[1]
        for cancelled in (stored, *cascade):
            announce_finished(type(self), cancelled)
        if result is not stored:
            result._copy_from(stored)
        return True

    # -- running on demand ---------------------------------------------------------------------

    def run_pending(
        self,
        *,
        task: Task[Any, Any] | None = None,
        include_deferred: bool = False,
        qualifiers: Mapping[str, str] | None = None,
    ) -> list[TaskResult[Any]]:
        """Run READY results until none is runnable; return those that finished, in order.

        Higher priority first, then oldest first. Tasks enqueued while running are run too.
        ``include_deferred`` also runs tasks whose ``run_after`` is in the future; ``task``
        restricts the run to one task; ``qualifiers`` (when given) skips tasks this "worker"
        does not qualify for.
        """
        finished: list[TaskResult[Any]] = []
        sender = type(self)
        while True:
            result = self._next_runnable(task, include_deferred, qualifiers)
            if result is None:
                return finished
            with running_inline():  # run_pending runs on the caller's (the test's) thread
                outcome = execute(result.task, result, worker_id=self.worker_id, sender=sender)
            cascade: list[TaskResult[Any]] = []
            with self._lock:
                if outcome.will_retry:
                    self._retry_at[result.id] = outcome.retry_at or utcnow()
                else:
                    self._finish(result)
                    cascade = self._dependency_done(result)[1]
            announce_outcome(sender, result, outcome)
            for cancelled in cascade:
                announce_finished(sender, cancelled)
            if result.is_finished:
                finished.append(result)

    def _next_runnable(
        self,
        only: Task[Any, Any] | None,
        include_deferred: bool,
        qualifiers: Mapping[str, str] | None,
    ) -> TaskResult[Any] | None:
        now = utcnow()
        best: TaskResult[Any] | None = None
        with self._lock:
            for result in self._results.values():
                task = result.task
                if result.status is not READY:
                    continue
                if only is not None and task.module_path != only.module_path:
                    continue
                if (
                    not include_deferred
                    and result.id not in self._retry_at
                    and task.run_after is not None
                    and task.run_after > now
                ):
                    continue
                if qualifiers is not None and any(
                    qualifiers.get(k) != v for k, v in task.qualifiers
                ):
                    continue
                if task.depends_on is not None:
                    dependency = self._results.get(task.depends_on)
                    if dependency is None or dependency.status is not TaskResultStatus.SUCCESSFUL:
                        continue
                if best is None or task.priority > best.task.priority:
                    best = result
            if best is not None:
                self._retry_at.pop(best.id, None)
            return best


def _cancelled_error() -> BaseException:
    return TaskCancelled("cancelled before it started")
