"""What a running attempt does in Redis besides running: progress, cancellation checks and
its lease.

Every attempt holds a lease in the ``taskyard:leases`` sorted set (job id -> lease end). The
process that runs the attempt (a SimpleWorker, a forked work horse, a pool member) extends it
from a small background thread every third of the lease, so the lease outlives the attempt
only if that process dies. Reapers (``taskyard.backends.redis.maintenance``) hand an attempt
whose lease ran out back to its queue or fail it, within a bounded time.
"""

from __future__ import annotations

import _thread
import logging
import os
import threading
import time
from typing import Any

from taskyard.backends.redis.keys import F_CANCEL, LEASES_KEY
from taskyard.backends.redis.record import progress_meta
from taskyard.tasks.results import Progress, TaskResult

logger = logging.getLogger("taskyard.backends.redis")

PROGRESS_EVERY = 0.25
"""Seconds between progress writes; the last progress is always written with the outcome."""
CHECK_EVERY = 0.5
"""Seconds between reads of the cancellation flag."""


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class RedisControl:
    """``AttemptControl`` for one attempt running inside an rq job."""

    __slots__ = ("_last_check", "_last_progress", "client", "job", "key", "lease")

    def __init__(self, client: Any, job: Any, lease: float) -> None:
        self.client = client
        self.job = job
        self.key: str = job.key
        self.lease = lease
        self._last_progress = 0.0
        self._last_check = time.monotonic()

    def set_progress(self, result: TaskResult[Any], progress: Progress) -> None:
        self.job.meta["progress"] = progress.to_json()  # rq re-saves meta from this object
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        try:
            self.client.hset(self.key, "meta", progress_meta(progress))
        except _redis_errors() as exc:
            logger.warning("could not store progress of %s: %s", result.id, exc)

    def heartbeat(self, result: TaskResult[Any]) -> None:
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return
        self._last_check = now
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(LEASES_KEY, {result.id: time.time() + self.lease}, xx=True)
                pipe.hget(self.key, F_CANCEL)
                flag = pipe.execute()[1]
        except _redis_errors() as exc:
            logger.warning("could not extend the lease of %s: %s", result.id, exc)
            return
        if flag == b"1":
            result._cancel_requested = True

    def is_cancelled(self, result: TaskResult[Any]) -> bool:
        if result._cancel_requested:
            return True
        now = time.monotonic()
        if now - self._last_check >= CHECK_EVERY:
            self._last_check = now
            try:
                flag = self.client.hget(self.key, F_CANCEL)
            except _redis_errors() as exc:
                logger.warning("could not read the cancel flag of %s: %s", result.id, exc)
                return False
            if flag == b"1":
                result._cancel_requested = True
        return result._cancel_requested


class LeaseKeeper:
    """Extends the leases of the attempts running in this process from one background thread.

    The thread wakes every ``TICK`` seconds (or sooner for short leases) and renews the leases
    due; starting or ending an attempt only touches a dict, never wakes it. A forked child
    starts with no thread and no leases: the keeper notices the new process id and starts
    afresh.
    """

    TICK = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[Any, float, float]] = {}  # id -> (client, lease, due)
        self._tick = self.TICK
        self._started = False
        self._pid = os.getpid()

    def hold(self, client: Any, job_id: str, lease: float) -> None:
        """Keep extending ``job_id``'s lease (already written by the attempt's start)."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._leases = {}
                self._started = False
            self._leases[job_id] = (client, lease, time.monotonic() + lease / 3)
            if lease / 6 < self._tick:
                self._tick = max(0.05, lease / 6)
            if not self._started:
                # A bare thread: no start-up handshake, which a forked work horse (one job per
                # process) would otherwise pay on every job. It dies with the process.
                _thread.start_new_thread(self._run, ())
                self._started = True

    def release(self, job_id: str) -> None:
        with self._lock:
            self._leases.pop(job_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._leases)

    def _run(self) -> None:
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                due = [(jid, c, lease) for jid, (c, lease, at) in self._leases.items() if at <= now]
                for jid, client, lease in due:
                    self._leases[jid] = (client, lease, now + lease / 3)
            for jid, client, lease in due:
                try:
                    client.zadd(LEASES_KEY, {jid: time.time() + lease}, xx=True)
                except Exception as exc:  # Redis away, or anything else: the thread must live
                    logger.warning("could not extend the lease of %s: %s", jid, exc)


KEEPER = LeaseKeeper()
