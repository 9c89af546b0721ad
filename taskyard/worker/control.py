"""What a running task's ``context`` does on the Database backend: progress, heartbeats and
cancellation checks, each throttled so a chatty task does not flood the database."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import BackendUnavailable
from taskyard.tasks.results import Progress, TaskResult

if TYPE_CHECKING:
    from taskyard.backends.database.worker_ops import QueueOps

logger = logging.getLogger("taskyard.worker")

PROGRESS_EVERY = 0.25
CHECK_EVERY = 1.0


class DatabaseControl:
    """``AttemptControl`` for one claimed attempt."""

    __slots__ = ("_last_check", "_last_progress", "lease", "ops", "worker_id")

    def __init__(self, ops: QueueOps, worker_id: str, lease: float) -> None:
        self.ops = ops
        self.worker_id = worker_id
        self.lease = lease
        self._last_progress = 0.0
        self._last_check = time.monotonic()

    def set_progress(self, result: TaskResult[Any], progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY:
            return  # the final progress is written with the attempt's outcome
        self._last_progress = self._last_check = now
        try:
            flag = self.ops.set_progress(self.worker_id, result.id, progress, self.lease)
        except BackendUnavailable as exc:
            logger.warning("could not store progress of %s: %s", result.id, exc)
            return
        if flag:
            result._cancel_requested = True

    def heartbeat(self, result: TaskResult[Any]) -> None:
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return
        self._last_check = now
        self._refresh(result)

    def is_cancelled(self, result: TaskResult[Any]) -> bool:
        if not result._cancel_requested and time.monotonic() - self._last_check >= CHECK_EVERY:
            self._last_check = time.monotonic()
            self._refresh(result)
        return result._cancel_requested

    def _refresh(self, result: TaskResult[Any]) -> None:
        try:
            flags = self.ops.extend_leases(self.worker_id, [result.id], self.lease)
        except BackendUnavailable as exc:
            logger.warning("could not extend the lease of %s: %s", result.id, exc)
            return
        if flags.get(result.id):
            result._cancel_requested = True
