"""How taskyard's workers take a job from their queues without ever losing it.

rq's worker takes a job with ``BLMOVE`` into the queue's intermediate list when it listens to a
single queue, but with ``BLPOP`` when it listens to several — and a job popped by ``BLPOP``
whose worker then dies, or whose Redis restarts before the worker has registered it, is in no
list at all: nobody will ever run it. taskyard's workers always listen to several rq queues
(one per priority level), so ``TaskyardQueue.dequeue_any`` takes every job into its queue's
intermediate list atomically (``claim.lua``: the first waiting job in priority order), where
the reaper finds it if its worker never starts it (``recovery``).

Blocking waits: ``BLMOVE`` can wait on one list only. With one queue the worker blocks on it
(rq's own way); with several it blocks on the first queue name's plain level for at most
``MULTI_QUEUE_POLL`` seconds, then takes from every queue again — so a job on another queue
waits at most that long for an idle worker.

A job whose hash cannot be read is set aside (``quarantine``) and the next one taken: one
damaged job never stops a worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from rq.exceptions import DequeueTimeout
from rq.queue import Queue

from taskyard.backends.redis.keys import INTERMEDIATE_SUFFIX, as_str, split_level_queue
from taskyard.backends.redis.quarantine import describe, quarantine
from taskyard.backends.redis.scripts import script

logger = logging.getLogger("taskyard.backends.redis")

MULTI_QUEUE_POLL = 0.2
"""Longest wait of an idle worker on one of its queues before it looks at all of them again."""


class TaskyardQueue(Queue):
    """rq's ``Queue`` whose ``dequeue_any`` never loses a job (see the module docstring)."""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Any,
        job_class: Any = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Any, Queue] | None:
        keys = [queue.key for queue in queues]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            taken = _claim(connection, keys)
            if taken is None and deadline is not None:
                taken = _wait(connection, keys, deadline)
            if taken is None:
                if deadline is None:
                    return None
                if time.monotonic() >= deadline:
                    raise DequeueTimeout(timeout, keys)
                continue
            queue_key, job_id = taken
            try:
                found = cls._fetch_dequeued_job(
                    connection,
                    queue_key,
                    job_id,
                    job_class=job_class,
                    serializer=serializer,
                    death_penalty_class=death_penalty_class,
                )
            except Exception as exc:  # the hash cannot be read: this job only fails
                why = f"job {job_id}: stored data cannot be read ({describe(exc)})"
                quarantine(connection, job_id, why)
                continue
            if found is None:  # gone meanwhile: drop it from the intermediate list
                connection.lrem(queue_key + INTERMEDIATE_SUFFIX, 0, job_id)
                continue
            return found


def _claim(connection: Any, keys: list[str]) -> tuple[str, str] | None:
    """Move the first waiting job, in the order of ``keys``, to its intermediate list."""
    args: list[str] = []
    for key in keys:
        args += [key, key + INTERMEDIATE_SUFFIX]
    reply = script(connection, "claim")(keys=args, args=[])
    if not reply:
        return None
    return as_str(reply[0]) or "", as_str(reply[1]) or ""


def _wait(connection: Any, keys: list[str], deadline: float) -> tuple[str, str] | None:
    """Block until a job arrives (taking it atomically into the intermediate list) or the
    wait is over."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    anchor = keys[0] if len(keys) == 1 else _anchor(keys)
    wait = left if len(keys) == 1 else min(left, MULTI_QUEUE_POLL)
    job_id = connection.blmove(anchor, anchor + INTERMEDIATE_SUFFIX, max(wait, 0.01))
    if job_id is None:
        return None
    return anchor, as_str(job_id) or ""


def _anchor(keys: list[str]) -> str:
    """The queue an idle worker blocks on: the plain (priority 0) level of its first name."""
    for key in keys:
        if split_level_queue(key)[1] == 0:
            return key
    return keys[0]


__all__ = ["MULTI_QUEUE_POLL", "TaskyardQueue"]
