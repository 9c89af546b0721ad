"""The Redis backend's side of ``taskyard show`` and ``taskyard list``: rq job hashes to
``TaskRecord`` objects, read without importing the tasks' modules.

``list`` gathers job ids from every rq queue taskyard uses (each priority level) and from rq's
registries (started, scheduled, deferred, finished, failed, canceled), reads their hashes in one
pipelined round trip and keeps the newest matches. Finished jobs are listed while Redis keeps
them (``RESULT_TTL``/``FAILURE_TTL``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.redis.backend import RedisBackend
from taskyard.backends.redis.keys import F_CANCEL, F_RECORD, F_RETURN, F_STATUS, RUN_JOB, as_str
from taskyard.backends.redis.record import (
    FINISHED_NAMES,
    decode_call,
    decode_return_value,
    load_record,
    map_status,
    progress_from_meta,
)
from taskyard.exceptions import TaskResultDoesNotExist
from taskyard.tasks.records import Dependent, TaskRecord, attempts_from
from taskyard.tasks.results import TaskError

_REGISTRIES = ("wip", "scheduled", "deferred", "finished", "failed", "canceled")
_LIST_FIELDS = (
    "data",
    "status",
    "origin",
    "meta",
    "enqueued_at",
    "created_at",
    "ended_at",
    "worker_name",
    F_STATUS,
    F_RECORD,
    F_RETURN,
    F_CANCEL,
)
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class RedisReader:
    """``TaskReader`` over a Redis backend."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    @property
    def client(self) -> Any:
        return self.backend.connection()

    # -- show -----------------------------------------------------------------------------------

    def show(self, task_id: str) -> TaskRecord:
        return self.backend._guard(self._show, task_id)

    def _show(self, task_id: str) -> TaskRecord:
        from rq.job import Job
        from rq.results import Result

        key = Job.key_for(task_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.xrevrange(Result.get_key(task_id), "+", "-", count=10)  # type: ignore[no-untyped-call]
            pipe.smembers(f"{key}:dependents")
            fields, entries, dependent_ids = pipe.execute()
        record = self._record(task_id, fields, entries)
        if record is None:
            raise TaskResultDoesNotExist(
                f"no taskyard task {task_id!r} in backend {self.backend.alias!r} "
                f"({self.backend.describe_connection()})"
            )
        dependents = []
        for job_id in sorted(self._dependents(task_id, dependent_ids)):
            found = self._record(job_id, self.client.hgetall(Job.key_for(job_id)), [])
            if found is not None:
                dependents.append(Dependent(job_id, found.task_path, found.status))
        return _replace_dependents(record, dependents)

    def _dependents(self, task_id: str, pending: set[bytes]) -> set[str]:
        """rq's dependents set lives only while the dependency is pending: also look for the
        jobs that name ``task_id`` among their ``dependency_ids``."""
        from rq.job import Job

        found = {as_str(raw) or "" for raw in pending}
        ids = sorted(self._job_ids(None) - {task_id})
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(Job.key_for(job_id), "dependency_ids")
            replies = pipe.execute()
        for job_id, raw in zip(ids, replies, strict=True):
            text = as_str(raw)
            if text and task_id in text:
                found.add(job_id)
        found.discard("")
        return found

    # -- list -----------------------------------------------------------------------------------

    def list_tasks(
        self, *, status: str | None, queue: str | None, task: str | None, limit: int
    ) -> list[TaskRecord]:
        return self.backend._guard(self._list_tasks, status, queue, task, limit)

    def _list_tasks(
        self, status: str | None, queue: str | None, task: str | None, limit: int
    ) -> list[TaskRecord]:
        from rq.job import Job

        ids = sorted(self._job_ids(queue))
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(Job.key_for(job_id), _LIST_FIELDS)
            replies = pipe.execute()
        found: list[TaskRecord] = []
        for job_id, values in zip(ids, replies, strict=True):
            fields = {name.encode(): v for name, v in zip(_LIST_FIELDS, values, strict=True) if v}
            record = self._record(job_id, fields, [], brief=True)
            if record is None:
                continue
            if status is not None and record.status != status:
                continue
            if queue is not None and record.queue_name != queue:
                continue
            if task is not None and record.task_path != task:
                continue
            found.append(record)
        found.sort(key=lambda r: (r.enqueued_at or _EARLIEST, r.id), reverse=True)
        return found[:limit]

    def _job_ids(self, queue: str | None) -> set[str]:
        """Ids in every rq queue (each priority level) and registry of taskyard's queues."""
        from rq.queue import Queue

        from taskyard.backends.redis.keys import split_level_queue

        prefix = Queue.redis_queue_namespace_prefix
        names = {
            (as_str(key) or "").removeprefix(prefix)
            for key in self.client.smembers(Queue.redis_queues_keys)
        }
        if queue is not None:
            names = {n for n in names if split_level_queue(n)[0] == queue}
        with self.client.pipeline(transaction=False) as pipe:
            for name in sorted(names):
                pipe.lrange(f"{prefix}{name}", 0, -1)
                for registry in _REGISTRIES:
                    pipe.zrange(f"rq:{registry}:{name}", 0, -1)
            replies = pipe.execute()
        ids: set[str] = set()
        for reply in replies:
            ids.update(as_str(item) or "" for item in reply)
        ids.discard("")
        return ids

    # -- one job --------------------------------------------------------------------------------

    def _record(
        self,
        job_id: str,
        fields: Mapping[bytes, bytes],
        entries: list[Any],
        brief: bool = False,
    ) -> TaskRecord | None:
        """The record of a job hash; ``None`` if it is gone or not a taskyard task."""
        raw = fields.get(b"data")
        if not raw:
            return None
        try:
            func_name, call = decode_call(raw)
            task_path, args, kwargs, options = call
        except (ValueError, TypeError):
            return None
        if func_name != RUN_JOB or not isinstance(options, dict):
            return None
        rq_status = as_str(fields.get(b"status"))
        own_status = as_str(fields.get(F_STATUS.encode()))
        status = map_status(rq_status, own_status).value
        saved = load_record(fields.get(F_RECORD.encode()))
        errors = [TaskError.from_json(e) for e in saved.get("errors") or ()]
        latest = entries[0][1] if entries else None
        _, _, exc_text = decode_return_value(latest)
        finished = _when(saved.get("finished_at"))
        if status in ("FAILED", "CANCELLED") and own_status not in FINISHED_NAMES:
            errors.append(
                TaskError(
                    exception_class_path="taskyard.backends.redis.record.WorkerLost",
                    traceback=exc_text or f"rq marked the job {rq_status}",
                )
            )
            finished = finished or _rq_when(as_str(fields.get(b"ended_at")))
        started = _when(saved.get("started_at"))
        last = _when(saved.get("last_attempted_at"))
        attempts, other = attempts_from(
            status=status,
            worker_ids=[str(w) for w in saved.get("worker_ids") or ()],
            errors=errors,
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
        )
        return_value, has_value = None, False
        if status == "SUCCESSFUL":
            own = fields.get(F_RETURN.encode())
            if own is not None:
                return_value, has_value = json.loads(own), True
            elif not brief:
                success = next((e for _, e in entries if e.get(b"type") == b"1"), None)
                has_value, return_value, _ = decode_return_value(success)
        details: dict[str, Any] = {
            "rq_status": rq_status,
            "rq_queue": as_str(fields.get(b"origin")),
        }
        if fields.get(b"worker_name"):
            details["rq_worker"] = as_str(fields.get(b"worker_name"))
        enqueued_at = _when(saved.get("enqueued_at")) or _rq_when(
            as_str(fields.get(b"enqueued_at") or fields.get(b"created_at"))
        )
        retries = options.get("retries")
        return TaskRecord(
            id=job_id,
            status=status,
            task_path=str(task_path),
            queue_name=str(options.get("queue_name", "default")),
            priority=int(options.get("priority", 0)),
            backend=str(options.get("backend", self.backend.alias)),
            store=self.backend.describe_connection(),
            enqueued_at=enqueued_at,
            enqueued_by=saved.get("enqueued_by"),
            args=args,
            kwargs=kwargs,
            run_after=_when(options.get("run_after")),
            started_at=started,
            last_attempted_at=last,
            finished_at=finished,
            attempts=attempts,
            max_attempts=(int(retries) if isinstance(retries, int) else 0) + 1,
            other_errors=other,
            progress=progress_from_meta(fields.get(b"meta")),
            return_value=return_value,
            has_return_value=has_value,
            depends_on=options.get("depends_on"),
            waiting_on=options.get("depends_on") if rq_status == "deferred" else None,
            cancel_requested=fields.get(F_CANCEL.encode()) == b"1",
            details=details,
        )


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _rq_when(text: str | None) -> datetime | None:
    if not text:
        return None
    from rq.utils import utcparse

    parsed: datetime = utcparse(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _replace_dependents(record: TaskRecord, dependents: list[Dependent]) -> TaskRecord:
    from dataclasses import replace

    return replace(record, dependents=dependents)
