"""Writing taskyard tasks as rq jobs: the enqueue side of the Redis backend.

A plain task is one ``HSET`` (rq's own fields from ``Job.to_dict()`` plus taskyard's) and one
``RPUSH`` to its queue (or ``ZADD`` into rq's scheduled registry), many of them in one pipeline.
A task with ``limit`` or ``depends_on`` is stored in a watched transaction of its own.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from taskyard.backends.redis.keys import (
    DEFAULT_LEASE,
    DEFAULT_MAX_INTERRUPTIONS,
    F_RECORD,
    F_STATUS,
    RUN_JOB,
    as_str,
    level_queue,
    levels_key,
    limit_key,
)
from taskyard.backends.redis.maintenance import dependency_failed
from taskyard.backends.redis.record import RQ_FINISHED, dump_record, encode_options
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.exceptions import BackendUnavailable, InvalidTask, TaskLimitError
from taskyard.tasks.execution import record_failure
from taskyard.tasks.results import TaskResult
from taskyard.tasks.task import Task

if TYPE_CHECKING:
    from taskyard.backends.redis.backend import RedisBackend


def _enqueue_record(result: TaskResult[Any]) -> str:
    """The record of a task just enqueued (the rest is filled in as it runs)."""
    enqueued_at = result.enqueued_at.isoformat() if result.enqueued_at else None
    return json.dumps({"enqueued_at": enqueued_at, "enqueued_by": result.enqueued_by})


class JobStore:
    """Builds and stores the rq jobs of one backend's tasks."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    @property
    def client(self) -> Any:
        return self.backend.connection()

    def job(self, result: TaskResult[Any]) -> Any:
        """The rq ``Job`` for ``result`` (not stored yet)."""
        from rq.job import Job, JobStatus, Retry
        from rq.utils import get_call_string

        task = result.task
        options = encode_options(task)
        if self.backend._lease != DEFAULT_LEASE:
            options["_lease"] = self.backend._lease
        if self.backend._max_interruptions != DEFAULT_MAX_INTERRUPTIONS:
            options["_max_interruptions"] = self.backend._max_interruptions
        job = Job.create(
            RUN_JOB,
            args=[task.module_path, result.args, result.kwargs, options],
            connection=self.client,
            timeout=-1 if task.timeout is None else math.ceil(task.timeout + self.backend._grace),
            result_ttl=self.backend.options["RESULT_TTL"],
            failure_ttl=self.backend.options["FAILURE_TTL"],
            description=get_call_string(task.module_path, result.args, result.kwargs, 75),
            depends_on=task.depends_on,
            id=result.id,
            origin=level_queue(task.queue_name, task.priority),
            status=JobStatus.QUEUED,
            retry=Retry(max=task.retries) if task.retries else None,
        )
        # Set after creating it: passing the serializer to Job.create costs a typing.Protocol
        # isinstance check per job, a tenth of a bulk enqueue. Nothing is serialized before.
        job.serializer = JSONSerializer
        return job

    def push(self, pipe: Any, job: Any, result: TaskResult[Any]) -> None:
        """Queue the commands that store one job (pipe in MULTI, or watching when it has a
        dependency: rq's own ``enqueue_job`` then watches the dependency and opens MULTI)."""
        task = result.task
        if task.depends_on is not None:
            self.backend.queue(job.origin).enqueue_job(job, pipeline=pipe)
            pipe.hset(job.key, mapping={F_STATUS: "READY", F_RECORD: _enqueue_record(result)})
        else:
            self._write(pipe, job, result)
            pipe.sadd(self._queues_key, self.backend.queue(job.origin).key)
        if task.priority:
            pipe.sadd(levels_key(task.queue_name), task.priority)

    def _write(self, pipe: Any, job: Any, result: TaskResult[Any]) -> None:
        """One job: its hash (rq's own fields from ``Job.to_dict`` plus taskyard's) in one
        ``HSET``, then ``RPUSH`` to its queue, or ``ZADD`` to rq's scheduled registry."""
        from rq.job import JobStatus
        from rq.utils import now

        run_after = result.task.run_after
        due = None
        if run_after is not None and run_after.timestamp() > time.time():
            due = math.ceil(run_after.timestamp())  # whole seconds, never early
            job._status = JobStatus.SCHEDULED
        else:
            job._status = JobStatus.QUEUED
            job.enqueued_at = now()
        mapping = {k: v for k, v in job.to_dict().items() if v != ""}
        mapping[F_STATUS] = "READY"
        mapping[F_RECORD] = _enqueue_record(result)
        pipe.hset(job.key, mapping=mapping)
        queue = self.backend.queue(job.origin)
        if due is None:
            pipe.rpush(queue.key, job.id)
        else:
            pipe.zadd(self._scheduled_key(job.origin), {job.id: due})

    @property
    def _queues_key(self) -> str:
        from rq.queue import Queue

        return Queue.redis_queues_keys

    def _scheduled_key(self, name: str) -> str:
        from rq.registry import ScheduledJobRegistry

        key: str = ScheduledJobRegistry.key_template.format(name)
        return key

    def store_plain(self, results: list[TaskResult[Any]]) -> None:
        if len(results) > 1:
            from taskyard.backends.redis.bulk import store_many

            store_many(self, results)
            return
        jobs = [self.job(result) for result in results]
        queue_keys: set[str] = set()
        levels: set[tuple[str, int]] = set()
        with self.client.pipeline() as pipe:
            pipe.multi()
            for job, result in zip(jobs, results, strict=True):
                self._write(pipe, job, result)
                queue_keys.add(self.backend.queue(job.origin).key)
                if result.task.priority:
                    levels.add((result.task.queue_name, result.task.priority))
            pipe.sadd(self._queues_key, *queue_keys)
            for name, priority in levels:
                pipe.sadd(levels_key(name), priority)
            pipe.execute()

    def store_guarded(self, result: TaskResult[Any]) -> None:
        """Store a task with ``limit`` and/or ``depends_on`` in a watched transaction."""
        from redis.exceptions import WatchError

        task = result.task
        client = self.client
        if task.depends_on is not None:
            failed = self._check_dependency(task)
            if failed is not None:
                self._store_cancelled(result, *failed)
                return
        key = task.effective_limit_key
        for _ in range(50):
            job = self.job(result)
            with client.pipeline() as pipe:
                try:
                    stale: list[str] = []
                    if key is not None:
                        pipe.watch(limit_key(key))
                        stale = self.check_limit(pipe, task, key)
                    if task.depends_on is None:
                        pipe.multi()
                    self.push(pipe, job, result)  # rq watches the dependency, then MULTI
                    if key is not None:
                        if stale:
                            pipe.srem(limit_key(key), *stale)
                        pipe.sadd(limit_key(key), result.id)
                    pipe.execute()
                    return
                except WatchError:
                    continue
        raise BackendUnavailable(f"could not enqueue {task.module_path}: Redis kept changing")

    def check_limit(self, pipe: Any, task: Task[Any, Any], key: str) -> list[str]:
        """Pending ids under ``key``; raise ``TaskLimitError`` when full. Returns stale ids."""
        from rq.job import Job

        members = [as_str(m) or "" for m in pipe.smembers(limit_key(key))]
        if not members:
            return []
        with self.client.pipeline(transaction=False) as reader:
            for member in members:
                reader.hmget(Job.key_for(member), "status", F_STATUS)
            replies = reader.execute()
        stale = [
            member
            for member, (rq_status, status) in zip(members, replies, strict=True)
            if rq_status is None
            or as_str(rq_status) in RQ_FINISHED
            or as_str(status) in ("SUCCESSFUL", "FAILED", "CANCELLED")
        ]
        pending = len(members) - len(stale)
        if pending >= (task.limit or 0):
            raise TaskLimitError(
                f"{task.module_path}: limit {task.limit} reached for key {key!r} "
                f"({pending} pending in backend {self.backend.alias!r})"
            )
        return stale

    def _check_dependency(self, task: Task[Any, Any]) -> tuple[str, str] | None:
        from rq.job import Job

        assert task.depends_on is not None
        if not self.client.exists(Job.key_for(task.depends_on)):
            raise InvalidTask(
                f"{task.module_path}: depends_on={task.depends_on!r} is not a result known to "
                f"backend {self.backend.alias!r}"
            )
        return dependency_failed(self.client, [task.depends_on])

    def _store_cancelled(self, result: TaskResult[Any], dep_id: str, dep_status: str) -> None:
        """The dependency already failed: store the job CANCELLED, never queued."""
        from rq.job import JobStatus
        from rq.registry import CanceledJobRegistry

        reason = InvalidTask(f"cancelled because dependency {dep_id} ended {dep_status}")
        record_failure(result.task, result, reason, cancel_requested=True)
        job = self.job(result)
        job._dependency_ids = []
        job.origin = job.origin or level_queue(result.task.queue_name, result.task.priority)
        with self.client.pipeline() as pipe:
            job.set_status(JobStatus.CANCELED, pipeline=pipe)
            job.save(pipeline=pipe)
            CanceledJobRegistry(job.origin, connection=self.client).add(job, pipeline=pipe)
            pipe.hset(job.key, mapping={F_STATUS: "CANCELLED", F_RECORD: dump_record(result)})
            if self.backend.options["FAILURE_TTL"] > 0:
                pipe.expire(job.key, self.backend.options["FAILURE_TTL"])
            pipe.execute()
