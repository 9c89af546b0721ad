"""The Database backend's side of ``taskyard show`` and ``taskyard list``: rows to
``TaskRecord`` objects, without importing the tasks' modules (queries in ``sql/*/inspect.sql``).
"""

from __future__ import annotations

from typing import Any

from taskyard.backends.database.backend import DatabaseBackend, _checked_id
from taskyard.backends.database.connectors import Connector, Row
from taskyard.exceptions import TaskResultDoesNotExist
from taskyard.tasks.records import Dependent, TaskRecord, attempts_from
from taskyard.tasks.results import Progress, TaskError


class DatabaseReader:
    """``TaskReader`` over a Database backend (opened without creating or migrating)."""

    def __init__(self, backend: DatabaseBackend) -> None:
        self.backend = backend

    @property
    def c(self) -> Connector:
        return self.backend.connector

    def show(self, task_id: str) -> TaskRecord:
        row_id = _checked_id(task_id)
        rows = self.c.run_retrying("get", {"id": row_id})
        if not rows:
            raise TaskResultDoesNotExist(
                f"no task {task_id!r} in backend {self.backend.alias!r} ({self.c.describe()})"
            )
        dependents = [
            Dependent(str(r["id"]), r["task_path"], r["status"])
            for r in self.c.run_retrying("inspect_dependents", {"id": row_id})
        ]
        return self._record(rows[0], dependents)

    def list_tasks(
        self, *, status: str | None, queue: str | None, task: str | None, limit: int
    ) -> list[TaskRecord]:
        params = {"status": status, "queue": queue, "task": task, "limit": limit}
        return [self._record(row, []) for row in self.c.run_retrying("inspect_list", params)]

    def _json(self, row: Row, column: str, default: Any) -> Any:
        try:
            value = self.c.parse_json(row[column])
        except ValueError:
            return f"<not JSON: {row[column]!r}>"
        return default if value is None else value

    def _record(self, row: Row, dependents: list[Dependent]) -> TaskRecord:
        c = self.c
        status = row["status"]
        errors = [
            TaskError.from_json(e)
            for e in self._json(row, "errors", [])
            if isinstance(e, dict) and "exception_class_path" in e and "traceback" in e
        ]
        started = c.parse_time(row["started_at"])
        last = c.parse_time(row["last_attempted_at"])
        finished = c.parse_time(row["finished_at"])
        attempts, other = attempts_from(
            status=status,
            worker_ids=[str(w) for w in self._json(row, "worker_ids", [])],
            errors=errors,
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
        )
        details: dict[str, Any] = {}
        if status == "RUNNING":
            details["lease_expires_at"] = _iso(c.parse_time(row["lease_expires_at"]))
            details["running_on"] = row["worker_id"]
        if row["limit_key"] is not None:
            details["limit_key"] = row["limit_key"]
        qualifiers = self._json(row, "qualifiers", None)
        if qualifiers:
            details["qualifiers"] = qualifiers
        options = self._json(row, "options", None)
        if options:
            details["options"] = options
        return TaskRecord(
            id=str(row["id"]),
            status=status,
            task_path=row["task_path"],
            queue_name=row["queue_name"],
            priority=int(row["priority"]),
            backend=row["backend"],
            store=c.describe(),
            enqueued_at=c.parse_time(row["enqueued_at"]),
            enqueued_by=row["enqueued_by"],
            args=self._json(row, "args", []),
            kwargs=self._json(row, "kwargs", {}),
            run_after=c.parse_time(row["run_after"]),
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
            attempts=attempts,
            max_attempts=int(row["max_attempts"]),
            other_errors=other,
            progress=Progress.from_json(self._json(row, "progress", None)),
            return_value=self._json(row, "return_value", None),
            has_return_value=status == "SUCCESSFUL",
            depends_on=_text(row["depends_on"]),
            waiting_on=_text(row["waiting_on"]),
            dependents=dependents,
            cancel_requested=bool(row["cancel_requested"]),
            details=details,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
