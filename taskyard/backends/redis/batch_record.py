"""The batching worker's outcomes: every outcome queued since the last flush is written with one
``lua/batch_finish.lua`` call (taskyard's fenced record, rq's status, result stream entry,
registries and expiry, a retry's way back), then announced (lifecycle log, ``task_finished``
hook) and, for the few jobs that have rq dependents, the dependents released or cancelled.

A flush that cannot reach Redis is tried again until Redis answers: a finished outcome is never
dropped because Redis was away (the script is fenced, so a repeat changes nothing).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskyard.backends.redis.batch_claim import Claimed, rq_now
from taskyard.backends.redis.keys import LEASES_KEY, limit_key
from taskyard.backends.redis.record import dump_record, progress_meta
from taskyard.backends.redis.scripts import script
from taskyard.tasks.execution import Outcome, announce_outcome
from taskyard.tasks.results import TaskResultStatus

logger = logging.getLogger("taskyard.backends.redis")

S = TaskResultStatus
MAX_PER_FLUSH = 500
PERSIST_MAX_DELAY = 5.0


@dataclass(slots=True)
class Ended:
    """An attempt's outcome waiting to be written (``outcome`` None: hand it back uncounted)."""

    claimed: Claimed
    outcome: Outcome | None


def _encoded(claimed: Claimed, outcome: Outcome | None) -> tuple[str, bytes, int]:
    """rq's result payload (base64), rq's ``exc_info`` (zlib) and the ttl, for one outcome."""
    result = claimed.result
    if outcome is None:
        return "", b"", 0
    if outcome.status is S.SUCCESSFUL:
        value = result._return_value
        encoded = "" if value is None else base64.b64encode(json.dumps(value).encode()).decode()
        return encoded, b"", claimed.result_ttl
    text = result.errors[-1].traceback if result.errors else outcome.status.value
    packed = zlib.compress(text.encode())
    return base64.b64encode(packed).decode(), packed, claimed.failure_ttl


def finish_args(ended: Ended, binaries: list[bytes], first: int = 7) -> list[Any]:
    """The script's list for one outcome (see ``batch_finish.lua``); rq's ``exc_info`` of a
    failure is appended to ``binaries`` (the script's arguments after the JSON)."""
    claimed, outcome = ended.claimed, ended.outcome
    result = claimed.result
    if outcome is None:
        kind = "undo"
        due = claimed.undo_due if claimed.undo_due is not None else -1
    elif outcome.status is S.READY:
        kind = "retry"
        delay_ok = outcome.retry_delay > 0 and outcome.retry_at is not None
        due = math.ceil(outcome.retry_at.timestamp()) if delay_ok else 0  # type: ignore[union-attr]
    else:
        kind, due = "done", 0
    key = result.task.effective_limit_key if result.is_finished else None
    encoded, exc_info, ttl = _encoded(claimed, outcome)
    index = 0
    if exc_info:
        binaries.append(exc_info)
        index = first + len(binaries) - 1
    return [
        claimed.job_id,
        claimed.origin,
        claimed.exec_id,
        str(claimed.attempt),
        result.status.value,
        dump_record(result),
        progress_meta(result.progress) if result.progress else "",
        limit_key(key) if key else "",
        json.dumps(result._return_value) if result.status is S.SUCCESSFUL else "",
        kind,
        encoded,
        index,
        ttl,
        due,
        repr(claimed.started),
    ]


def _unbegin(claimed: Claimed) -> None:
    """Take back what the claim's begin added to the record (this attempt's worker id, and the
    start time if it was the first)."""
    result = claimed.result
    if result._worker_ids:
        result._worker_ids.pop()
    if not result._worker_ids:
        result._started_at = result._last_attempted_at = None
    result._status = S.READY


class Recorder:
    """Collects outcomes from executor threads and the event loop; ``flush()`` writes them."""

    def __init__(self, client: Any, worker_name: str, sender: type) -> None:
        self.client = client
        self.worker_name = worker_name
        self.sender = sender
        self._lock = threading.Condition()
        self._pending: list[Ended] = []
        self._flushing = 0
        self._in_flight: list[Ended] = []
        self.superseded = 0
        self.flushes = 0
        from rq.defaults import RQ_KEY_PREFIX

        self.prefix = RQ_KEY_PREFIX

    def add(self, claimed: Claimed, outcome: Outcome | None) -> None:
        """Queue an outcome; ``None`` hands the attempt back uncounted (it never ran)."""
        if outcome is None:
            _unbegin(claimed)
        with self._lock:
            self._pending.append(Ended(claimed, outcome))
            self._lock.notify_all()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + self._flushing

    def unwritten(self) -> list[Claimed]:
        """Attempts that ended and whose outcome is not written yet: their leases must be kept
        until it is (while Redis is away, a lease running out would hand the job to another
        attempt and the outcome would be lost)."""
        with self._lock:
            return [e.claimed for e in (*self._in_flight, *self._pending) if e.outcome is not None]

    def wait_for_work(self, timeout: float) -> bool:
        with self._lock:
            if not self._pending:
                self._lock.wait(timeout)
            return bool(self._pending)

    def gather(self, most: int, timeout: float, busy: Callable[[], int]) -> None:
        """Wait up to ``timeout`` for ``most`` outcomes, while ``busy()`` says more will come."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._pending) < most and busy():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._lock.wait(left)

    def flush(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Write every pending outcome (in batches of at most ``MAX_PER_FLUSH``); returns how
        many were written."""
        done = 0
        while True:
            with self._lock:
                while self._flushing:  # the claim loop is writing some with its claim
                    self._lock.wait(0.05)
                batch, self._pending = (
                    self._pending[:MAX_PER_FLUSH],
                    self._pending[MAX_PER_FLUSH:],
                )
                self._flushing = len(batch)
                self._in_flight = batch
            if not batch:
                return done
            try:
                self._write(batch, stop)
            finally:
                with self._lock:
                    self._flushing = 0
                    self._in_flight = []
                    self._lock.notify_all()
            done += len(batch)

    def fixed_args(self) -> list[Any]:
        """The first five arguments of ``finish_jobs`` (the JSON list comes sixth)."""
        return [self.worker_name, rq_now(), repr(time.time()), self.prefix, LEASES_KEY]

    def encode(self, batch: list[Ended], first: int) -> list[Any]:
        """The JSON list and the binaries it refers to (ARGV indexes from ``first``)."""
        binaries: list[bytes] = []
        jobs = [finish_args(ended, binaries, first) for ended in batch]
        return [json.dumps(jobs, separators=(",", ":")), *binaries]

    def take(self, most: int = MAX_PER_FLUSH) -> list[Ended]:
        """Pending outcomes for the claim loop to send with its next claim (``complete`` or
        ``give_back`` them after)."""
        with self._lock:
            if self._flushing or not self._pending:
                return []
            batch, self._pending = self._pending[:most], self._pending[most:]
            self._flushing = len(batch)
            self._in_flight = batch
            return batch

    def give_back(self, batch: list[Ended]) -> None:
        with self._lock:
            self._pending[:0] = batch
            self._flushing = 0
            self._in_flight = []
            self._lock.notify_all()

    def complete(self, batch: list[Ended], replies: Any) -> None:
        with self._lock:
            self._flushing = 0
            self._in_flight = []
            self._lock.notify_all()
        self.flushes += 1
        for ended, (written, dependents) in zip(batch, replies, strict=True):
            self._after(ended, int(written) == 1, int(dependents) == 1)

    def _write(self, batch: list[Ended], stop: Callable[[], bool]) -> None:
        from redis.exceptions import ConnectionError, TimeoutError

        args = [*self.fixed_args(), *self.encode(batch, 7)]
        delay = 0.25
        while True:
            try:
                replies = script(self.client, "batch_finish")(keys=[], args=args)
                break
            except (ConnectionError, TimeoutError) as exc:
                logger.warning("Redis unreachable (%s); outcomes kept, trying again", exc)
                time.sleep(delay)
                delay = min(delay * 2, PERSIST_MAX_DELAY)
        self.flushes += 1
        for ended, (written, dependents) in zip(batch, replies, strict=True):
            self._after(ended, int(written) == 1, int(dependents) == 1)

    def _after(self, ended: Ended, written: bool, dependents: bool) -> None:
        claimed, outcome = ended.claimed, ended.outcome
        result = claimed.result
        if not written:
            self.superseded += 1
            logger.warning(
                "task %s: attempt %d was superseded (its lease ran out and the job was handed to "
                "another attempt); its outcome %s is not recorded",
                claimed.job_id,
                claimed.attempt,
                result.status.value,
            )
            return
        if outcome is None:
            return  # handed back uncounted
        try:
            announce_outcome(self.sender, result, outcome)
        except Exception:
            logger.exception("task %s: announcing its outcome failed", claimed.job_id)
        if not dependents:
            return
        try:
            if result.status is S.SUCCESSFUL:
                self._release_dependents(claimed)
            elif result.status in (S.FAILED, S.CANCELLED):
                from taskyard.backends.redis.maintenance import cancel_dependents

                for cancelled in cancel_dependents(
                    self.client, claimed.job_id, result.status.value
                ):
                    logger.info(
                        "task %s cancelled: dependency %s did not succeed",
                        cancelled,
                        claimed.job_id,
                    )
        except Exception:  # the reaper's sweep and rq's ready registry catch up
            logger.exception("task %s: releasing its dependents failed", claimed.job_id)

    def _release_dependents(self, claimed: Claimed) -> None:
        from rq.job import Job
        from rq.queue import Queue

        from taskyard.backends.redis.serializer import JSONSerializer

        job = Job.fetch(claimed.job_id, connection=self.client, serializer=JSONSerializer)
        queue = Queue(claimed.origin, connection=self.client, serializer=JSONSerializer)
        queue.enqueue_dependents(job)


__all__ = ["Ended", "Recorder", "finish_args"]
