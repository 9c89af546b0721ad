"""Jobs whose stored data cannot be read are set aside, never contagious.

A job hash can be damaged (a hand edit, a bug in another producer, a bit flip): its call data
not JSON, its record not JSON, a counter not a number, a date rq cannot parse. Every reader
that meets one — a worker taking it from a queue, the reaper, ``get_result`` — fails that job
alone with ``CorruptJob`` and the reason, lists it in the sorted set ``taskyard:quarantined``
(id -> when; kept a week) and carries on with every other job. ``quarantined_count`` is what
``/health/readiness`` and ``/metrics`` report.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from taskyard.backends.redis.keys import (
    F_RECORD,
    F_STATUS,
    INTERMEDIATE_SUFFIX,
    LEASES_KEY,
    QUARANTINE_KEY,
    as_str,
)
from taskyard.exceptions import InvalidTask
from taskyard.tasks.execution import error_from_exception, utcnow

lifecycle = logging.getLogger("taskyard.tasks")

QUARANTINE_KEEP = 7 * 24 * 3600
"""Seconds a quarantined job id stays listed in ``taskyard:quarantined``."""


class CorruptJob(InvalidTask):
    """The error of a job whose stored data cannot be read (it was failed, never run)."""


def quarantine(client: Any, job_id: str, why: str) -> bool:
    """Fail a job whose stored data cannot be read, without reading it further, and list it in
    ``taskyard:quarantined``. Returns False if the job no longer exists."""
    from rq.job import Job
    from rq.queue import Queue
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    key = Job.key_for(job_id)
    raw_origin, raw_ttl, has_status, raw_record = client.hmget(
        key, "origin", "failure_ttl", F_STATUS, F_RECORD
    )
    if not client.exists(key):
        return False
    origin = as_str(raw_origin) or "default"
    try:
        ttl = int(raw_ttl or 604_800)
    except ValueError:
        ttl = 604_800
    error = CorruptJob(why)
    now = time.time()
    try:  # keep the history when only another part of the job is damaged
        record = json.loads(raw_record) if raw_record else {}
        record = record if isinstance(record, dict) else {}
    except ValueError:
        record = {}
    record["errors"] = [*(record.get("errors") or []), error_from_exception(error).to_json()]
    record["finished_at"] = utcnow().isoformat()
    started = StartedJobRegistry(origin, connection=client)
    with client.pipeline() as pipe:
        pipe.hset(key, mapping={"status": "failed", "ended_at": _rq_now()})
        if has_status is not None:
            pipe.hset(key, mapping={F_STATUS: "FAILED", F_RECORD: json.dumps(record)})
        failed = FailedJobRegistry(origin, connection=client)
        pipe.zadd(failed.key, {job_id: ttl if ttl < 0 else now + ttl})
        pipe.lrem(Queue(origin, connection=client).key, 0, job_id)
        pipe.lrem(Queue(origin, connection=client).key + INTERMEDIATE_SUFFIX, 0, job_id)
        pipe.zrem(LEASES_KEY, job_id)
        pipe.zadd(QUARANTINE_KEY, {job_id: now})
        pipe.zremrangebyscore(QUARANTINE_KEY, "-inf", now - QUARANTINE_KEEP)
        pipe.execute()
    for entry in client.zrange(started.key, 0, -1):
        if (as_str(entry) or "").startswith(f"{job_id}:"):
            client.zrem(started.key, entry)
    lifecycle.error("task failed id=%s error=CorruptJob: %s", job_id, why)
    return True


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` and of the error that caused it (rq wraps its own)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__
    return f"{text} ({describe(cause)})" if cause is not None else text


def quarantined_count(client: Any) -> int:
    """Jobs set aside in the last week because their data could not be read."""
    return int(client.zcount(QUARANTINE_KEY, time.time() - QUARANTINE_KEEP, "+inf"))


def _rq_now() -> str:
    from rq.utils import now, utcformat

    return str(utcformat(now()))


__all__ = ["QUARANTINE_KEEP", "CorruptJob", "describe", "quarantine", "quarantined_count"]
