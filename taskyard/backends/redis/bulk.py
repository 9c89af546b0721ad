"""Bulk enqueue on Redis: many plain tasks stored by a Lua script per chunk, all chunks in one
``MULTI``/``EXEC`` (one round trip, all or nothing).

Each job is exactly the job ``JobStore`` stores one at a time (rq's own fields from
``Job.to_dict()`` plus taskyard's): the first job of each task in the batch is built by rq
(``Job.create``) and its fields that do not depend on the call become the group's shared
fields; the others get only what differs — their id, rq's compressed ``data``, the
``description`` and taskyard's record. The values travel as netstrings in a few arguments, so
redis-py does not pack (and Redis does not parse) tens of thousands of separate arguments.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskyard.backends.redis.keys import F_RECORD, F_STATUS, RUN_JOB, levels_key
from taskyard.backends.redis.scripts import script
from taskyard.tasks.results import TaskResult

if TYPE_CHECKING:
    from taskyard.backends.redis.store import JobStore

CHUNK = 2000
"""Jobs per script call (a call of 2,000 jobs keeps Redis busy for about 10 ms here)."""

_OWN = ("data", "description", F_RECORD)

#: ``JSONSerializer.dumps`` without building an encoder per call (the same text)
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _net(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"%d:%s" % (len(data), data)


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if hasattr(value, "value"):  # JobStatus
        return str(value.value).encode()
    return str(value).encode()


def store_many(store: JobStore, results: Sequence[TaskResult[Any]]) -> None:
    """Store plain tasks (no ``limit``, no ``depends_on``) in one transaction."""
    from rq.job import Job, JobStatus
    from rq.queue import Queue
    from rq.registry import ScheduledJobRegistry
    from rq.utils import get_call_string, now

    stamp = now()
    wall = time.time()
    group_of: dict[tuple[int, bool], bytes] = {}
    groups: list[bytes] = []
    options_of: dict[int, Any] = {}
    data_cache: dict[bytes, tuple[bytes, bytes]] = {}
    enqueuers: dict[Any, bytes] = {}
    chunks: list[list[bytes]] = [[]]
    queue_keys: set[str] = set()
    levels: set[tuple[str, int]] = set()
    for result in results:
        task = result.task
        run_after = task.run_after
        due = None
        if run_after is not None and run_after.timestamp() > wall:
            due = math.ceil(run_after.timestamp())  # whole seconds, never early
        key = (id(task), due is None)
        number = group_of.get(key)
        if number is None:
            job = store.job(result)
            options_of[id(task)] = job.args[3]
            job.created_at = stamp
            if due is None:
                job._status = JobStatus.QUEUED
                job.enqueued_at = stamp
                target, kind = Queue.redis_queue_namespace_prefix + job.origin, b"L"
                queue_keys.add(target)
            else:
                job._status = JobStatus.SCHEDULED
                target = ScheduledJobRegistry.key_template.format(job.origin)
                kind = b"Z"
            shared = {k: v for k, v in job.to_dict().items() if v != "" and k not in _OWN}
            shared[F_STATUS] = "READY"
            parts = [_net(target), _net(kind), _net(str(due or 0)), _net(str(len(shared)))]
            for name, value in shared.items():
                parts += [_net(name), _net(_text(value))]
            groups.append(b"".join(parts))
            number = group_of[key] = _net(str(len(groups)))
            if task.priority:
                levels.add((task.queue_name, task.priority))
        call: tuple[Any, ...] = (
            RUN_JOB,
            None,
            [task.module_path, result.args, result.kwargs, options_of[id(task)]],
            {},
        )
        payload = _ENCODE(call).encode()  # JSONSerializer.dumps: rq's Job.data, uncompressed
        cached = data_cache.get(payload)
        if cached is None:
            described = get_call_string(task.module_path, result.args, result.kwargs, 75) or ""
            cached = data_cache[payload] = (_net(zlib.compress(payload)), _net(described))
        by = enqueuers.get(result.enqueued_by)
        if by is None:
            by = enqueuers[result.enqueued_by] = json.dumps(result.enqueued_by).encode()
        at = result.enqueued_at
        enqueued = b'"%s"' % at.isoformat().encode() if at is not None else b"null"
        # the same text as json.dumps({"enqueued_at": …, "enqueued_by": …}) (store.py)
        record = b'{"enqueued_at": %s, "enqueued_by": %s}' % (enqueued, by)
        chunk = chunks[-1]
        if len(chunk) >= CHUNK:
            chunk = []
            chunks.append(chunk)
        chunk.append(
            b"%s%d:%s%s%s%d:%s"
            % (number, len(result.id), result.id.encode(), *cached, len(record), record)
        )
    enqueue_many = script(store.client, "enqueue_many")
    names = b"".join(_net(n) for n in _OWN)
    blob = b"".join(groups)
    with store.client.pipeline() as pipe:
        for chunk in chunks:
            if chunk:
                enqueue_many(
                    keys=[],
                    args=[blob, b"".join(chunk), Job.redis_job_namespace_prefix, names],
                    client=pipe,
                )
        if queue_keys:
            pipe.sadd(Queue.redis_queues_keys, *queue_keys)
        for name, priority in levels:
            pipe.sadd(levels_key(name), priority)
        pipe.execute()
