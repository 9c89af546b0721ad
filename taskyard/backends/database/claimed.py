"""Turning a claimed row into something to run (shared by workers and in-process draining)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskyard.backends.database.rows import result_from_row, task_for_row
from taskyard.tasks import registry
from taskyard.tasks.execution import Outcome, fail_without_running
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.tasks.task import Task

if TYPE_CHECKING:
    from taskyard.backends.database.backend import DatabaseBackend
    from taskyard.backends.database.connectors import Row

logger = logging.getLogger("taskyard.worker")


@dataclass(slots=True)
class Claimed:
    """A claimed row: the task and result to run, or (``failed`` set) a row that cannot run,
    already recorded as FAILED on ``result``."""

    task: Task[Any, Any] | None
    result: TaskResult[Any]
    failed: Outcome | None = None


def open_claimed(row: Row, backend: DatabaseBackend, worker_id: str) -> Claimed:
    """Resolve a claimed row's task and build its result.

    A row naming something that is not a task, a module this worker may not import, or holding
    corrupt data gives a FAILED result with an error that says why; nothing is called.
    """
    connector = backend.connector
    try:
        task = task_for_row(row, connector)
        return Claimed(task, result_from_row(row, connector, backend, task=task, strict=True))
    except Exception as exc:
        logger.error("task %s (%s) cannot run: %s", row["id"], row["task_path"], exc)
        return cannot_run(row, backend, worker_id, exc)


def cannot_run(row: Row, backend: DatabaseBackend, worker_id: str, exc: BaseException) -> Claimed:
    """A claimed row that will not run because of ``exc``: its result, recorded FAILED."""
    placeholder = registry.placeholder(str(row["task_path"]))
    try:
        result = result_from_row(row, backend.connector, backend, task=placeholder)
    except Exception:
        result = TaskResult(
            task=placeholder,
            id=str(row["id"]),
            status=TaskResultStatus.RUNNING,
            args=[],
            kwargs={},
            backend=backend.alias,
            worker_ids=[worker_id] * int(row["attempts"]),
            backend_obj=backend,
        )
    fail_without_running(result, exc)
    return Claimed(None, result, Outcome(TaskResultStatus.FAILED, exception=exc))
