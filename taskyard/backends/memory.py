"""Bookkeeping shared by the backends that keep results in this process."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.backends.base import Backend, Option, positive
from taskyard.exceptions import InvalidTask, TaskLimitError, TaskResultDoesNotExist
from taskyard.tasks.hooks import announce_enqueued, announce_finished
from taskyard.tasks.results import FINISHED_STATUSES, TaskResult, TaskResultStatus
from taskyard.tasks.task import Task

MAX_RESULTS = Option(
    int,
    10_000,
    "finished results kept in memory for get_result()/refresh(); the oldest are dropped",
    positive,
)


class InMemoryBackend(Backend):
    """Results in a dict in this process: lookup, retention, limits and dependencies.

    Pending results are always kept; finished ones are dropped oldest first beyond
    ``OPTIONS["MAX_RESULTS"]``.
    """

    supports_cancel = True
    supports_limit = True
    supports_depends_on = True

    def __init__(self, alias: str, params: Any) -> None:
        super().__init__(alias, params)
        self._lock = threading.RLock()
        self._results: dict[str, TaskResult[Any]] = {}
        self._finished_order: dict[str, None] = {}
        self._limit_counts: dict[str, int] = {}
        self._waiting: dict[str, list[TaskResult[Any]]] = {}
        self._unfinished = 0
        self._max_results: int = self.options.get("MAX_RESULTS", MAX_RESULTS.default)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        try:
            return self._results[result_id]
        except KeyError:
            raise TaskResultDoesNotExist(
                f"no result {result_id!r} in backend {self.alias!r} (in-memory results live "
                "only in the process that enqueued them)"
            ) from None

    def refresh_result(self, result: TaskResult[Any]) -> None:
        stored = self._results.get(result.id)
        if stored is None:
            if result.get_backend() is self:
                return  # an old finished result that has been dropped: it cannot change
            self.get_result(result.id)
        elif stored is not result:
            result._copy_from(stored)

    async def arefresh_result(self, result: TaskResult[Any]) -> None:
        self.refresh_result(result)

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        return self.get_result(result_id)

    def _accept(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        can_wait: bool = True,
    ) -> tuple[TaskResult[Any], TaskResult[Any] | None]:
        """Validate and admit a new result, and announce it.

        Returns the result and the unfinished dependency it waits for, if any. A result that
        a failed dependency cancelled at once comes back finished (and announced so).
        """
        self.validate_task(task)
        result = self.new_result(task, args, kwargs)
        with self._lock:
            waiting = self._admit(result)
            if waiting is not None and not can_wait:
                self._results.pop(result.id, None)
                self._waiting.get(waiting.id, []).remove(result)
                self._unfinished -= 1
                self._release_limit(result)
                raise InvalidTask(
                    f"{task.module_path}: depends_on={waiting.id} has not finished, and backend "
                    f"{self.alias!r} ({type(self).__name__}) runs tasks inline so it cannot wait"
                )
        sender = type(self)
        announce_enqueued(sender, result)
        if result.is_finished:
            announce_finished(sender, result)
        return result, waiting

    # -- called with the lock held ----------------------------------------------------------

    def _admit(self, result: TaskResult[Any]) -> TaskResult[Any] | None:
        """Check limit and dependency for a new result and store it.

        Returns the dependency's result when it is still pending (the caller must wait for
        it), else ``None``. A failed or cancelled dependency cancels ``result`` at once.
        """
        task = result.task
        key = task.effective_limit_key
        if key is not None:
            pending = self._limit_counts.get(key, 0)
            if pending >= (task.limit or 0):
                raise TaskLimitError(
                    f"{task.module_path}: limit {task.limit} reached for key {key!r} "
                    f"({pending} pending in backend {self.alias!r})"
                )
            self._limit_counts[key] = pending + 1
        dependency = None
        if task.depends_on is not None:
            dependency = self._results.get(task.depends_on)
            if dependency is None:
                self._release_limit(result)
                raise InvalidTask(
                    f"{task.module_path}: depends_on={task.depends_on!r} is not a result known "
                    f"to backend {self.alias!r}"
                )
        self._results[result.id] = result
        self._unfinished += 1
        if dependency is None or dependency.status is TaskResultStatus.SUCCESSFUL:
            return None
        if dependency.status in FINISHED_STATUSES:
            self._cancel_for_dependency(result, dependency)
            return None
        self._waiting.setdefault(dependency.id, []).append(result)
        return dependency

    def _cancel_for_dependency(self, result: TaskResult[Any], dependency: TaskResult[Any]) -> None:
        from taskyard.tasks.execution import record_failure

        reason = InvalidTask(
            f"cancelled because dependency {dependency.id} ({dependency.task.module_path}) "
            f"ended {dependency.status.value}"
        )
        record_failure(result.task, result, reason, cancel_requested=True)
        self._finish(result)

    def _dependency_done(
        self, parent: TaskResult[Any]
    ) -> tuple[list[TaskResult[Any]], list[TaskResult[Any]]]:
        """``parent`` finished: return (results now free to run, results cancelled because it
        did not succeed, transitively)."""
        waiting = self._waiting.pop(parent.id, [])
        if parent.status is TaskResultStatus.SUCCESSFUL:
            return [r for r in waiting if r.status is TaskResultStatus.READY], []
        cancelled: list[TaskResult[Any]] = []
        for result in waiting:
            if result.status is TaskResultStatus.READY:
                self._cancel_for_dependency(result, parent)
                cancelled.append(result)
                cancelled.extend(self._dependency_done(result)[1])
        return [], cancelled

    def _release_limit(self, result: TaskResult[Any]) -> None:
        key = result.task.effective_limit_key
        if key is not None:
            left = self._limit_counts.get(key, 1) - 1
            if left > 0:
                self._limit_counts[key] = left
            else:
                self._limit_counts.pop(key, None)

    def _finish(self, result: TaskResult[Any]) -> None:
        """Book a result that reached a final status: release its limit, apply retention."""
        self._release_limit(result)
        self._unfinished -= 1
        order = self._finished_order
        order[result.id] = None
        while len(order) > self._max_results:
            oldest = next(iter(order))
            del order[oldest]
            self._results.pop(oldest, None)

    def unfinished_count(self) -> int:
        """Results accepted and not finished yet (waiting, deferred, ready or running)."""
        return self._unfinished
