"""``ImmediateBackend``: runs each task inline, inside ``enqueue``. For development."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.backends.base import Option
from taskyard.backends.memory import MAX_RESULTS, InMemoryBackend
from taskyard.tasks.execution import announce_outcome, execute
from taskyard.tasks.hooks import running_inline
from taskyard.tasks.results import TaskResult, process_identity
from taskyard.tasks.task import Task


class ImmediateBackend(InMemoryBackend):
    """Run the task in the caller's thread before ``enqueue`` returns.

    The lifecycle is the same as a worker's: hooks, log lines, retries, timeouts, errors with
    tracebacks, ``depends_on`` and ``limit``. Retries run back to back unless
    ``OPTIONS["RETRY_DELAYS"]`` is true (then the caller sleeps the backoff). ``run_after``
    and ``qualifiers`` are refused: nothing can wait or be picked by a worker here. Recent
    results stay readable in this process (``MAX_RESULTS``).
    """

    supports_async_task = True
    supports_priority = True  # accepted; with no queue there is nothing to order
    supports_retries = True
    supports_timeout = True

    options_schema = {
        "MAX_RESULTS": MAX_RESULTS,
        "RETRY_DELAYS": Option(bool, False, "sleep the retry backoff between attempts"),
    }

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self._retry_delays: bool = self.options["RETRY_DELAYS"]

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        result, _ = self._accept(task, args, kwargs, can_wait=False)
        if result.is_finished:  # cancelled by a failed dependency
            return result
        sender = type(self)
        worker_id = process_identity()
        try:
            while True:
                with running_inline():  # the caller's thread, connections and transaction
                    outcome = execute(task, result, worker_id=worker_id, sender=sender)
                if not outcome.will_retry:
                    break
                if not self._retry_delays:
                    outcome.retry_delay = 0.0
                announce_outcome(sender, result, outcome)
                time.sleep(outcome.retry_delay)
        finally:
            with self._lock:
                self._finish(result)
        announce_outcome(sender, result, outcome)
        return result

    def cancel(self, result: TaskResult[Any]) -> bool:
        stored = self._results.get(result.id, result)
        if stored.is_finished:
            return False
        stored._cancel_requested = True
        return True
