"""Lifecycle hooks (enqueued, started, finished) and the lifecycle log, in one place.

Every backend reports transitions through the ``announce_*`` functions below, which write one
log line per transition (logger ``taskyard.tasks``) and call the receivers connected to the
matching hook. Receivers are called as ``receiver(sender=<backend class>, task_result=...)``,
the same shape as Django's task signals. A receiver that raises is logged and skipped: hooks
never change a task's outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskyard.tasks.results import TaskResultStatus

if TYPE_CHECKING:
    from taskyard.tasks.results import TaskResult

logger = logging.getLogger("taskyard.tasks")

Receiver = Callable[..., Any]


class Hook:
    """A list of receivers called on one kind of transition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: tuple[Receiver, ...] = ()
        self._lock = threading.Lock()

    def connect(self, receiver: Receiver) -> Receiver:
        """Call ``receiver(sender=..., task_result=...)`` on every transition. Usable as a
        decorator; connecting the same receiver twice has no effect."""
        with self._lock:
            if receiver not in self._receivers:
                self._receivers = (*self._receivers, receiver)
        return receiver

    def disconnect(self, receiver: Receiver) -> None:
        with self._lock:
            self._receivers = tuple(r for r in self._receivers if r != receiver)

    def send(self, sender: type, task_result: TaskResult[Any]) -> None:
        for receiver in self._receivers:
            try:
                receiver(sender=sender, task_result=task_result)
            except Exception:
                logger.exception("%s receiver %r raised; ignored", self.name, receiver)

    def __repr__(self) -> str:
        return f"<Hook {self.name} receivers={len(self._receivers)}>"


task_enqueued = Hook("task_enqueued")
task_started = Hook("task_started")
task_finished = Hook("task_finished")


def announce_enqueued(sender: type, result: TaskResult[Any]) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "task enqueued id=%s task=%s queue=%s priority=%s backend=%s",
            result.id,
            result.task.module_path,
            result.task.queue_name,
            result.task.priority,
            result.backend,
        )
    if task_enqueued._receivers:
        task_enqueued.send(sender, result)


def announce_started(sender: type, result: TaskResult[Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "task started id=%s task=%s attempt=%d worker=%s",
            result.id,
            result.task.module_path,
            result.attempts,
            result.worker_ids[-1] if result.worker_ids else "-",
        )
    if task_started._receivers:
        task_started.send(sender, result)


def announce_retry(result: TaskResult[Any], delay: float) -> None:
    """A failed attempt that will be tried again: a log line, no hook."""
    logger.warning(
        "task will retry id=%s task=%s attempt=%d of %d in %.2fs error=%s",
        result.id,
        result.task.module_path,
        result.attempts,
        result.task.retries + 1,
        delay,
        result.errors[-1].message if result.errors else "-",
    )


def announce_finished(sender: type, result: TaskResult[Any]) -> None:
    status = result.status
    if status is TaskResultStatus.FAILED:
        logger.error(
            "task failed id=%s task=%s attempts=%d error=%s",
            result.id,
            result.task.module_path,
            result.attempts,
            result.errors[-1].message if result.errors else "-",
        )
    elif logger.isEnabledFor(logging.INFO):
        logger.info(
            "task %s id=%s task=%s attempts=%d",
            "succeeded" if status is TaskResultStatus.SUCCESSFUL else status.value.lower(),
            result.id,
            result.task.module_path,
            result.attempts,
        )
    if task_finished._receivers:
        task_finished.send(sender, result)
