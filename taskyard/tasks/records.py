"""``TaskRecord``: one stored task as ``taskyard show`` and ``taskyard list`` report it.

Backend-neutral: the Database backend builds records from its rows, the Redis backend from
its job hashes (``backends/database/inspect.py``, ``backends/redis/inspect.py``), and the
command line formats them once (``taskyard/inspection.py``). Building a record never imports
the task's module: the task is named by its stored path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from taskyard.tasks.results import Progress, TaskError

#: The statuses a record can have (``TaskResultStatus`` values).
STATUSES = ("READY", "RUNNING", "SUCCESSFUL", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt of a task. Times are known where the backend stores them: the first
    attempt's start, the last attempt's start and end; others show ``None``."""

    number: int
    worker_id: str | None
    outcome: str  # "succeeded", "failed", "running" or "interrupted"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: TaskError | None = None


@dataclass(frozen=True)
class Dependent:
    """A task waiting on (or cancelled because of) the task shown."""

    id: str
    task_path: str
    status: str


@dataclass(frozen=True)
class TaskRecord:
    """What a backend keeps about one task, read without importing the task's module."""

    id: str
    status: str
    task_path: str
    queue_name: str
    priority: int
    backend: str
    store: str
    enqueued_at: datetime | None
    enqueued_by: str | None
    args: Any
    kwargs: Any
    run_after: datetime | None = None
    started_at: datetime | None = None
    last_attempted_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: Sequence[AttemptRecord] = ()
    max_attempts: int | None = None
    other_errors: Sequence[TaskError] = ()
    progress: Progress | None = None
    return_value: Any = None
    has_return_value: bool = False
    depends_on: str | None = None
    waiting_on: str | None = None
    dependents: Sequence[Dependent] = ()
    cancel_requested: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[TaskError]:
        """Every recorded error: those of attempts, then the others."""
        return [a.error for a in self.attempts if a.error is not None] + list(self.other_errors)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 strings), for ``--json``."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        def error(value: TaskError | None) -> dict[str, str] | None:
            if value is None:
                return None
            return {**value.to_json(), "message": value.message}

        return {
            "id": self.id,
            "status": self.status,
            "task": self.task_path,
            "queue": self.queue_name,
            "priority": self.priority,
            "backend": self.backend,
            "store": self.store,
            "enqueued_at": when(self.enqueued_at),
            "enqueued_by": self.enqueued_by,
            "run_after": when(self.run_after),
            "started_at": when(self.started_at),
            "last_attempted_at": when(self.last_attempted_at),
            "finished_at": when(self.finished_at),
            "args": self.args,
            "kwargs": self.kwargs,
            "max_attempts": self.max_attempts,
            "attempts": [
                {
                    "number": a.number,
                    "worker_id": a.worker_id,
                    "outcome": a.outcome,
                    "started_at": when(a.started_at),
                    "finished_at": when(a.finished_at),
                    "error": error(a.error),
                }
                for a in self.attempts
            ],
            "other_errors": [error(e) for e in self.other_errors],
            "progress": self.progress.to_json() if self.progress is not None else None,
            "return_value": self.return_value,
            "depends_on": self.depends_on,
            "waiting_on": self.waiting_on,
            "dependents": [
                {"id": d.id, "task": d.task_path, "status": d.status} for d in self.dependents
            ],
            "cancel_requested": self.cancel_requested,
            "details": self.details,
        }


def attempts_from(
    *,
    status: str,
    worker_ids: Sequence[str],
    errors: Sequence[TaskError],
    started_at: datetime | None,
    last_attempted_at: datetime | None,
    finished_at: datetime | None,
) -> tuple[list[AttemptRecord], list[TaskError]]:
    """Pair a task's attempts (one worker id each) with its errors (one per failed attempt,
    in order); errors beyond the attempts (cancelled before a start, a failed dependency) are
    returned apart. The last attempt of a SUCCESSFUL or RUNNING task carries no error."""
    count = len(worker_ids)
    open_last = status in ("SUCCESSFUL", "RUNNING")
    attempts: list[AttemptRecord] = []
    used = 0
    for index, worker_id in enumerate(worker_ids):
        last = index == count - 1
        error = None
        if not (last and open_last) and used < len(errors):
            error = errors[used]
            used += 1
        if error is not None:
            lost = error.exception_class_path.rpartition(".")[2] == "WorkerLost"
            outcome = "interrupted" if lost else "failed"
        elif last and status == "SUCCESSFUL":
            outcome = "succeeded"
        elif last and status == "RUNNING":
            outcome = "running"
        else:
            outcome = "interrupted"
        attempts.append(
            AttemptRecord(
                number=index + 1,
                worker_id=worker_id,
                outcome=outcome,
                started_at=started_at if index == 0 else (last_attempted_at if last else None),
                finished_at=finished_at if last else None,
                error=error,
            )
        )
    return attempts, list(errors[used:])


class TaskReader(Protocol):
    """Reads a backend's stored tasks for ``taskyard show`` and ``taskyard list``."""

    def show(self, task_id: str) -> TaskRecord:
        """The task ``task_id``; ``TaskResultDoesNotExist`` when there is none."""
        ...

    def list_tasks(
        self, *, status: str | None, queue: str | None, task: str | None, limit: int
    ) -> list[TaskRecord]:
        """The newest ``limit`` tasks (by enqueue time) matching every filter given."""
        ...
