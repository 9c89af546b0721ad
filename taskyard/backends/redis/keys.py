"""Names shared by the Redis backend, its job wrapper and its worker: Redis keys, job-hash
fields and the rq queue that holds each (queue name, priority) pair.

Priorities are rq-native: one rq queue per priority level that is in use. Priority 0 lives in
the queue that carries the plain name (``default``); any other level ``p`` in ``default:p<p>``
(``default:p10``, ``default:p-5``). The levels in use for a queue name are recorded in the set
``taskyard:levels:<name>``; taskyard's worker classes listen to every level, highest first.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

RUN_JOB = "taskyard.backends.redis.job.run_job"
"""The rq job function of every taskyard job (``func_name`` in rq's job data)."""

# Fields taskyard adds to rq's job hash (rq ignores fields it does not know).
F_RECORD = "taskyard"  # JSON: enqueued/started/finished times, errors, worker ids
F_STATUS = "taskyard_status"  # READY, RUNNING, SUCCESSFUL, FAILED or CANCELLED
F_ATTEMPT = "taskyard_attempt"  # attempts started; fences writes from superseded attempts
F_RETURN = "taskyard_return"  # JSON return value of a SUCCESSFUL task
F_CANCEL = "taskyard_cancel"  # "1" once cancel() was called
F_HANDBACKS = "taskyard_handbacks"  # times the job was taken but handed back before it began
F_TOKEN = "taskyard_token"  # the token of the attempt that began last (a retried begin is a no-op)

DEFAULT_LEASE = 10.0
"""Seconds a silent attempt keeps its job (the Redis backend's ``LEASE`` option)."""

LEASES_KEY = "taskyard:leases"
"""Sorted set: job id -> time (epoch seconds) its running attempt's lease ends."""

DEFAULT_MAX_INTERRUPTIONS = 3
"""Interrupted attempts re-run before a task fails with ``WorkerLost`` (``MAX_INTERRUPTIONS``)."""

MAX_HANDBACKS = 10
"""Times a job may be taken by a worker and handed back without beginning (its worker died
before the attempt began) before it fails with ``WorkerLost``: a job whose mere loading kills
the worker process must not loop forever."""

QUARANTINE_KEY = "taskyard:quarantined"
"""Sorted set: id of a job whose stored data could not be read -> when it was failed."""

INTERMEDIATE_SUFFIX = ":intermediate"
"""rq's list of jobs a worker has taken from a queue and not yet started: ``<queue key>`` +
this suffix (rq's ``IntermediateQueue``)."""

_LEVEL_SUFFIX = re.compile(r":p(-?\d+)$")


def levels_key(queue_name: str) -> str:
    """The set of non-zero priority levels used by ``queue_name``."""
    return f"taskyard:levels:{queue_name}"


def limit_key(key: str) -> str:
    """The set of job ids pending under a task's ``limit_key``."""
    return f"taskyard:limit:{key}"


def level_queue(queue_name: str, priority: int) -> str:
    """The rq queue holding ``queue_name`` jobs of ``priority``."""
    return queue_name if priority == 0 else f"{queue_name}:p{priority}"


def split_level_queue(rq_queue: str) -> tuple[str, int]:
    """``("default", 10)`` for ``"default:p10"``; ``(name, 0)`` for a plain name."""
    match = _LEVEL_SUFFIX.search(rq_queue)
    if match is None:
        return rq_queue, 0
    return rq_queue[: match.start()], int(match.group(1))


def bad_queue_name(queue_name: str) -> str | None:
    """Why ``queue_name`` cannot be a taskyard queue on Redis, or ``None``."""
    if _LEVEL_SUFFIX.search(queue_name):
        return (
            f"queue name {queue_name!r} ends like a priority-level queue (':p<number>'), "
            "which the Redis backend reserves for priorities"
        )
    return None


def require_rq() -> tuple[ModuleType, ModuleType]:
    """Import ``rq`` and ``redis``, or fail with the extra to install."""
    try:
        import redis
        import rq
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            f"the Redis backend needs rq and redis ({exc}): pip install 'taskyard[redis]'"
        ) from exc
    return rq, redis


def as_str(value: Any) -> str | None:
    """Decode a Redis reply (bytes) to text; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
