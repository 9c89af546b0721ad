"""Cancelling jobs that have not started (and, transitively, the jobs that depend on them).
Attempts whose lease ran out and stranded jobs are ``recovery``'s business.

Each change is one optimistic transaction (``WATCH`` the job, read, ``MULTI``, write,
``EXEC``, retried on conflict), so a worker starting the same job at the same moment either
wins cleanly or sees the change.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from taskyard.backends.redis.keys import (
    F_CANCEL,
    F_RECORD,
    F_STATUS,
    as_str,
)
from taskyard.backends.redis.quarantine import quarantine
from taskyard.backends.redis.record import RQ_FINISHED, load_record
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.exceptions import InvalidTask
from taskyard.tasks.execution import error_from_exception, utcnow

logger = logging.getLogger("taskyard.backends.redis")
lifecycle = logging.getLogger("taskyard.tasks")

PENDING_RQ = frozenset({"queued", "scheduled", "deferred", "created", "ready_to_enqueue"})
_TRIES = 20


def _error(exc: BaseException) -> dict[str, str]:
    return error_from_exception(exc).to_json()


def _finished_record(raw: Any, exc: BaseException) -> str:
    try:
        record = load_record(raw)
    except ValueError:  # unreadable: the cancellation is recorded in a fresh record
        record = {}
    record.setdefault("errors", []).append(_error(exc))
    record["finished_at"] = utcnow().isoformat()
    return json.dumps(record, separators=(",", ":"))


def _watch_error() -> type[Exception]:
    from redis.exceptions import WatchError

    return WatchError


# -- cancelling ---------------------------------------------------------------------------------


def cancel_job(client: Any, job_id: str, reason: BaseException) -> tuple[str, list[str]]:
    """Cancel ``job_id`` if it has not finished.

    Returns ``(outcome, cancelled)``: outcome ``"cancelled"`` (it had not started: it never
    will), ``"requested"`` (it is running or being claimed: its flag is set and the task sees
    ``is_cancelled()``), ``"finished"`` or ``"missing"``; ``cancelled`` lists every job id
    cancelled, dependents included.
    """
    from rq.job import Job

    key = Job.key_for(job_id)
    watch_error = _watch_error()
    for _ in range(_TRIES):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                rq_raw, status_raw, record = pipe.hmget(key, "status", F_STATUS, F_RECORD)
                rq_status, status = as_str(rq_raw), as_str(status_raw)
                if rq_status is None:
                    return "missing", []
                if status in ("SUCCESSFUL", "FAILED", "CANCELLED") or rq_status in RQ_FINISHED:
                    return "finished", []
                if status == "RUNNING" or rq_status not in PENDING_RQ:
                    pipe.multi()
                    pipe.hset(key, F_CANCEL, "1")
                    pipe.execute()
                    return "requested", []
                job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
                pipe.multi()
                job.cancel(pipeline=pipe)
                for parent in job._dependency_ids:
                    pipe.srem(Job.dependents_key_for(parent), job_id)
                pipe.hset(
                    key,
                    mapping={
                        F_STATUS: "CANCELLED",
                        F_CANCEL: "1",
                        F_RECORD: _finished_record(record, reason),
                    },
                )
                if job.failure_ttl and job.failure_ttl > 0:
                    pipe.expire(key, job.failure_ttl)
                pipe.execute()
            except watch_error:
                continue
        lifecycle.info("task cancelled id=%s reason=%s", job_id, reason)
        return "cancelled", [job_id, *cancel_dependents(client, job_id, "CANCELLED")]
    raise RuntimeError(f"could not cancel {job_id}: it kept changing")  # pragma: no cover


def cancel_dependents(client: Any, parent_id: str, parent_status: str) -> list[str]:
    """Cancel the jobs waiting on ``parent_id``, which ended ``parent_status`` (transitively)."""
    from rq.job import Job

    dependents = sorted(as_str(m) or "" for m in client.smembers(Job.dependents_key_for(parent_id)))
    cancelled: list[str] = []
    for dependent in dependents:
        reason = InvalidTask(f"cancelled because dependency {parent_id} ended {parent_status}")
        outcome, ids = cancel_job(client, dependent, reason)
        if outcome == "cancelled":
            cancelled.extend(ids)
    return cancelled


def dependency_failed(client: Any, dependency_ids: list[str]) -> tuple[str, str] | None:
    """``(id, status)`` of a dependency that ended without succeeding, else ``None``."""
    from rq.job import Job

    if not dependency_ids:
        return None
    with client.pipeline(transaction=False) as pipe:
        for dep in dependency_ids:
            pipe.hmget(Job.key_for(dep), "status", F_STATUS)
        replies = pipe.execute()
    for dep, (rq_status, status) in zip(dependency_ids, replies, strict=True):
        rq_text, own = as_str(rq_status), as_str(status)
        if own in ("FAILED", "CANCELLED"):
            return dep, own
        if rq_text in ("failed", "stopped", "canceled"):
            return dep, "CANCELLED" if rq_text == "canceled" else "FAILED"
    return None


# -- dependents of failed jobs ----------------------------------------------------------------


def sweep_orphaned_dependents(client: Any) -> list[str]:
    """Cancel deferred jobs whose dependency already ended without succeeding.

    A dependency that fails while a dependent is being enqueued can leave the dependent
    deferred in rq forever; this finds and cancels such jobs.
    """
    from rq.job import Job
    from rq.queue import Queue
    from rq.registry import DeferredJobRegistry

    cancelled: list[str] = []
    for queue_key in client.smembers(Queue.redis_queues_keys):
        name = (as_str(queue_key) or "")[len(Queue.redis_queue_namespace_prefix) :]
        registry = DeferredJobRegistry(name, connection=client, serializer=JSONSerializer)
        for raw_id in client.zrange(registry.key, 0, -1):
            job_id = as_str(raw_id) or ""
            own, raw_deps = client.hmget(Job.key_for(job_id), F_STATUS, "dependency_ids")
            if own is None or not raw_deps:
                continue  # a plain rq job: rq's rules apply to it, not taskyard's
            try:
                deps = [str(d) for d in json.loads(raw_deps)]
            except (ValueError, TypeError) as exc:
                quarantine(client, job_id, f"job {job_id}: dependency ids unreadable ({exc})")
                continue
            failed = dependency_failed(client, deps)
            if failed is not None:
                reason = InvalidTask(f"cancelled because dependency {failed[0]} ended {failed[1]}")
                outcome, ids = cancel_job(client, job_id, reason)
                if outcome == "cancelled":
                    cancelled.extend(ids)
    return cancelled
