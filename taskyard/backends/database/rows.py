"""Between ``TaskResult`` objects and ``taskyard_task`` rows.

A row stores the task's module path plus only what differs from the task as declared with
``@task`` (``options``); the worker resolves the declared task and re-applies those
differences, so a plain ``task.enqueue()`` stores no options at all.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import InvalidTask
from taskyard.tasks import registry
from taskyard.tasks.results import Progress, TaskError, TaskResult, TaskResultStatus
from taskyard.tasks.task import Task

if TYPE_CHECKING:
    from datetime import datetime

    from taskyard.backends.base import Backend
    from taskyard.backends.database.connectors import Connector, Row

#: Extension options kept in the row's ``options`` JSON when they differ from the declaration.
OPTION_FIELDS = ("retries", "retry_backoff", "retry_backoff_max", "retry_on", "timeout", "limit")
_CLASS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Task) if f.name in OPTION_FIELDS}
_STATUS = {s.value: s for s in TaskResultStatus}


def task_overrides(task: Task[Any, Any]) -> dict[str, Any] | None:
    """The option values of ``task`` that differ from its declaration (JSON-ready)."""
    declared = registry.lookup(task.module_path)
    if declared is task:
        return None
    out: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        value = getattr(task, name)
        base = getattr(declared, name) if declared is not None else _CLASS_DEFAULTS[name]
        if value != base:
            out[name] = [registry.class_path(c) for c in value] if name == "retry_on" else value
    return out or None


def task_for_row(row: Row, connector: Connector) -> Task[Any, Any]:
    """The task a row describes, for running it: its declaration (``registry.resolve``, which
    may import an allowed module), with the row's differences applied.

    Raises ``TaskNotFound`` (an ``InvalidTask``) if the path does not lead to a task.
    """
    return _with_row_options(registry.resolve(row["task_path"]), row, connector, for_run=True)


def _with_row_options(
    task: Task[Any, Any], row: Row, connector: Connector, *, for_run: bool
) -> Task[Any, Any]:
    """``task`` with the row's differences applied (``retry_on`` only ``for_run``: a reader
    does not need the exception classes, and must import nothing)."""
    changes: dict[str, Any] = {}
    if row["priority"] != task.priority:
        changes["priority"] = row["priority"]
    if row["queue_name"] != task.queue_name:
        changes["queue_name"] = row["queue_name"]
    if row["run_after"] is not None:
        changes["run_after"] = connector.parse_time(row["run_after"])
    if row["depends_on"] is not None:
        changes["depends_on"] = str(row["depends_on"])
    qualifiers = connector.parse_json(row["qualifiers"])
    if qualifiers and tuple(sorted(qualifiers.items())) != task.qualifiers:
        changes["qualifiers"] = qualifiers
    options = connector.parse_json(row["options"])
    if options:
        for name, value in options.items():
            if name not in OPTION_FIELDS or (name == "retry_on" and not for_run):
                continue
            changes[name] = (
                tuple(registry.import_exception(p) for p in value) if name == "retry_on" else value
            )
    limit_key = row["limit_key"]
    if limit_key is not None and limit_key != task.effective_limit_key:
        changes["limit_key"] = limit_key
        changes.setdefault("limit", task.limit or 1)
    return dataclasses.replace(task, **changes) if changes else task


def _task_for_reader(row: Row, connector: Connector) -> Task[Any, Any]:
    """The row's task for showing its result: the declaration if this process has it (nothing
    is imported), else a placeholder carrying the path."""
    declared = registry.lookup(row["task_path"])
    if declared is not None:
        try:
            return _with_row_options(declared, row, connector, for_run=False)
        except (InvalidTask, ValueError, TypeError):
            pass
    return registry.placeholder(row["task_path"])


def _describe(value: object) -> str:
    if isinstance(value, ValueError):
        return f"text that is not JSON ({value})"
    return type(value).__name__


_CORRUPT = "taskyard.exceptions.CorruptTask"


class _Reader:
    """Reads a row's JSON columns; what cannot be read is shown empty and noted as an error
    (``notes``), so one bad value never makes a result unreadable."""

    def __init__(self, row: Row, connector: Connector) -> None:
        self.row = row
        self.connector = connector
        self.notes: list[TaskError] = []

    def json(self, column: str, kind: type, default: Any) -> Any:
        raw = self.row[column]
        try:
            value = self.connector.parse_json(raw)
        except ValueError:
            value = _Unreadable
        if value is None and default is None:
            return None
        if isinstance(value, kind):
            return value
        self.notes.append(
            TaskError(
                exception_class_path=_CORRUPT,
                traceback=f"{_CORRUPT}: stored {column} cannot be read: {str(raw)[:200]!r}",
            )
        )
        return default

    def time(self, column: str) -> datetime | None:
        """A timestamp column; one that cannot be read is shown as None and noted."""
        raw = self.row[column]
        try:
            return self.connector.parse_time(raw)
        except (ValueError, TypeError, OverflowError):
            self.notes.append(
                TaskError(
                    exception_class_path=_CORRUPT,
                    traceback=f"{_CORRUPT}: stored {column} cannot be read: {str(raw)[:200]!r}",
                )
            )
            return None

    def errors(self) -> list[TaskError]:
        out = []
        for item in self.json("errors", list, []):
            try:
                out.append(TaskError.from_json(item))
            except (KeyError, TypeError):
                out.append(TaskError(exception_class_path=_CORRUPT, traceback=str(item)[:2000]))
        return out


class _Unreadable:
    pass


def result_from_row(
    row: Row,
    connector: Connector,
    backend: Backend,
    task: Task[Any, Any] | None = None,
    strict: bool = False,
) -> TaskResult[Any]:
    """A ``TaskResult`` for a row. ``task`` defaults to the row's task, or a placeholder
    naming the path when it cannot be resolved in this process. ``strict`` (for running the
    task) raises ``InvalidTask`` on corrupt arguments instead of showing them empty; other
    unreadable columns are shown empty, with an error saying so."""
    if task is None:
        task = _task_for_reader(row, connector)
    read = _Reader(row, connector)
    try:
        args, kwargs = connector.parse_json(row["args"]), connector.parse_json(row["kwargs"])
    except ValueError as exc:
        args = kwargs = exc
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        if strict:
            raise InvalidTask(
                f"task row {row['id']} is corrupt: args must be a JSON array and kwargs a JSON "
                f"object, found {_describe(args)} and {_describe(kwargs)}"
            )
        args, kwargs = [], {}  # shown empty; the row keeps the raw text and errors say why
    errors = read.errors()
    worker_ids = [str(w) for w in read.json("worker_ids", list, [])]
    try:
        return_value = connector.parse_json(row["return_value"])
    except ValueError:
        return_value = None
    progress = Progress.from_json(read.json("progress", dict, None))
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=str(row["id"]),
        status=_STATUS[row["status"]],
        args=args,
        kwargs=kwargs,
        backend=row["backend"],
        enqueued_at=read.time("enqueued_at"),
        started_at=read.time("started_at"),
        finished_at=read.time("finished_at"),
        last_attempted_at=read.time("last_attempted_at"),
        errors=errors + read.notes,
        worker_ids=worker_ids,
        return_value=return_value,
        progress=progress,
        enqueued_by=row["enqueued_by"],
        backend_obj=backend,
    )
    if row["status"] == "RUNNING":
        result._attempt = int(row["attempts"])
        result._retries_left = int(row["max_attempts"]) - result._attempt
    return result
