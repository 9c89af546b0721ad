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
        # One unreadable value (a row edited by hand or by another program) is shown empty and
        # named under "unreadable"; it never makes `show` or `list` fail for the whole queue.
        unreadable: dict[str, str] = {}

        def time_of(column: str) -> Any:
            try:
                return c.parse_time(row[column])
            except (ValueError, TypeError, OverflowError):
                unreadable[column] = repr(row[column])[:200]
                return None

        def int_of(column: str, default: int) -> int:
            value = row[column]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            unreadable[column] = repr(value)[:200]
            return default

        errors = [
            TaskError.from_json(e)
            for e in self._json(row, "errors", [])
            if isinstance(e, dict) and "exception_class_path" in e and "traceback" in e
        ]
        started = time_of("started_at")
        last = time_of("last_attempted_at")
        finished = time_of("finished_at")
        worker_ids = self._json(row, "worker_ids", [])
        attempts, other = attempts_from(
            status=status,
            worker_ids=[str(w) for w in worker_ids] if isinstance(worker_ids, list) else [],
            errors=errors,
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
        )
        details: dict[str, Any] = {}
        if status == "RUNNING":
            details["lease_expires_at"] = _iso(time_of("lease_expires_at"))
            details["running_on"] = row["worker_id"]
        if row["limit_key"] is not None:
            details["limit_key"] = row["limit_key"]
        qualifiers = self._json(row, "qualifiers", None)
        if qualifiers:
            details["qualifiers"] = qualifiers
        options = self._json(row, "options", None)
        if options:
            details["options"] = options
        progress = self._json(row, "progress", None)
        record = TaskRecord(
            id=str(row["id"]),
            status=status,
            task_path=row["task_path"],
            queue_name=row["queue_name"],
            priority=int_of("priority", 0),
            backend=row["backend"],
            store=c.describe(),
            enqueued_at=time_of("enqueued_at"),
            enqueued_by=row["enqueued_by"],
            args=self._json(row, "args", []),
            kwargs=self._json(row, "kwargs", {}),
            run_after=time_of("run_after"),
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
            attempts=attempts,
            max_attempts=int_of("max_attempts", 0),
            other_errors=other,
            progress=Progress.from_json(progress if isinstance(progress, dict) else None),
            return_value=self._json(row, "return_value", None),
            has_return_value=status == "SUCCESSFUL",
            depends_on=_text(row["depends_on"]),
            waiting_on=_text(row["waiting_on"]),
            dependents=dependents,
            cancel_requested=bool(row["cancel_requested"]),
            details=details,
        )
        if unreadable:
            details["unreadable"] = unreadable
        return record


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
