"""What a forking worker knows about the attempt its work horse is running.

A work horse enforces a task's ``timeout`` itself with ``SIGALRM`` (see ``job._own_alarm``),
which interrupts Python code and blocking calls at once. A horse stuck inside one long C call
that holds the GIL never returns to Python to notice: only killing it stops it. rq's own
monitor kills a horse 60 s past rq's hard limit; taskyard's forking worker does it
``KILL_GRACE`` seconds past the task's ``timeout`` instead, and records ``TaskTimeout``.

For that the parent must know when the attempt began and what its timeout is. ``AttemptSlot``
is a few bytes of memory shared with the horse through ``fork``: the horse writes its deadline
when the task starts executing and clears it when the task returns (so the time spent storing
the outcome, however long Redis is away, is never mistaken for an overrun).
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

KILL_GRACE = 2.0
"""Seconds past a task's ``timeout`` after which a forking worker kills its work horse."""

_LAYOUT = struct.Struct("dd q")  # deadline (time.monotonic), timeout, attempt number


class AttemptSlot:
    """The deadline of the attempt a work horse is executing, shared with its parent."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _LAYOUT.size)
        self.clear()

    def set(self, timeout: float, attempt: int) -> None:
        self._memory[:] = _LAYOUT.pack(time.monotonic() + timeout, timeout, attempt)

    def clear(self) -> None:
        self._memory[:] = _LAYOUT.pack(0.0, 0.0, 0)

    def read(self) -> tuple[float, float, int] | None:
        """``(deadline, timeout, attempt)`` while an attempt with a timeout executes."""
        deadline, timeout, attempt = _LAYOUT.unpack(self._memory[:])
        return (deadline, timeout, attempt) if deadline else None

    def overrun(self, grace: float = KILL_GRACE) -> tuple[float, int] | None:
        """``(timeout, attempt)`` when the attempt has run ``grace`` seconds past its timeout."""
        found = self.read()
        if found is None or time.monotonic() < found[0] + grace:
            return None
        return found[1], found[2]


SLOT: AttemptSlot | None = None
"""Set by a forking worker before it forks; ``None`` in other processes (nothing to share)."""


@contextmanager
def executing(timeout: float | None, attempt: int) -> Iterator[None]:
    """Publish the deadline of the attempt executing inside the block to the parent worker."""
    slot = SLOT
    if slot is None or timeout is None:
        yield
        return
    slot.set(timeout, attempt)
    try:
        yield
    finally:
        slot.clear()


# -- the parent's side ----------------------------------------------------------------------------


class HorseKeeping:
    """What taskyard's forking worker adds to rq's ``Worker`` around its work horse.

    * The task's timeout: the horse is killed ``KILL_GRACE`` seconds past it (checked every
      ``job_monitoring_interval``, one second) and the attempt recorded as ``TaskTimeout``.
    * A horse that died (SIGKILL, OOM, a crash) in the middle of an attempt: the attempt was
      interrupted; it is handed back at once, whatever ``retries`` says (``settle.interrupt``),
      not failed by rq. A horse that died before the attempt began: handed back, uncounted.
    * A cold shutdown: the horse is killed and its attempt handed back the same way.
    """

    job_monitoring_interval: int
    connection: Any
    horse_pid: int
    log: Any

    def _slot(self) -> AttemptSlot:
        global SLOT
        if SLOT is None:
            SLOT = AttemptSlot()
        return SLOT

    def execute_job(self, job: Any, queue: Any) -> None:
        self._slot().clear()
        self._taskyard_timed_out: tuple[str, float, int] | None = None
        self._taskyard_horse_died: str | None = None
        self.job_monitoring_interval = min(self.job_monitoring_interval, 1)
        super().execute_job(job, queue)  # type: ignore[misc]

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        over = self._slot().overrun()
        if over is not None and self.horse_pid:
            timeout, attempt = over
            self.log.warning(
                "job %s ran %gs past its timeout of %gs: killing work horse %s",
                job.id,
                KILL_GRACE,
                timeout,
                self.horse_pid,
            )
            self._taskyard_timed_out = (job.id, timeout, attempt)
            self.kill_horse()  # type: ignore[attr-defined]
            return
        super().maintain_heartbeats(job, execution)  # type: ignore[misc]

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[misc]
        self._taskyard_horse_died = job.id

    def handle_job_failure(
        self,
        job: Any,
        queue: Any,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        died = getattr(self, "_taskyard_horse_died", None) == job.id
        if died:
            self._taskyard_horse_died = None
            why = exc_string.strip() or "its work horse died"
            if self.settle_abandoned(job, queue, execution, why):
                return
        super().handle_job_failure(  # type: ignore[misc]
            job,
            queue,
            started_job_registry=started_job_registry,
            exc_string=exc_string,
            execution=execution,
        )

    def settle_abandoned(self, job: Any, queue: Any, execution: Any, why: str) -> bool:
        """Move on a taskyard job whose work horse is gone; False for jobs rq should handle
        (plain rq jobs, and jobs that ended FAILED or CANCELLED: rq records the failure)."""
        from taskyard.backends.redis.keys import F_ATTEMPT, F_STATUS, as_str
        from taskyard.backends.redis.settle import hand_back, interrupt, time_out

        raw_status, raw_attempt = self.connection.hmget(job.key, F_STATUS, F_ATTEMPT)
        status = as_str(raw_status)
        if status is None:
            return False
        attempt = int(raw_attempt or 0)
        timed = getattr(self, "_taskyard_timed_out", None)
        if status == "RUNNING":
            if timed is not None and timed[0] == job.id and timed[2] == attempt:
                time_out(self.connection, job.id, attempt, timed[1])
            else:  # only the attempt this worker's horse began: another may have begun since
                interrupt(self.connection, job.id, attempt, why, worker=self.name)  # type: ignore[attr-defined]
            return True
        if status == "READY":
            hand_back(self.connection, job.id, why)
            return True
        if status == "SUCCESSFUL" and queue is not None and execution is not None:
            # the outcome was stored; the horse died before rq's own bookkeeping
            self.handle_job_success(job, queue, queue.started_job_registry, execution)  # type: ignore[attr-defined]
            return True
        job.retries_left = 0  # taskyard's record is final: rq must not run it again
        return False


__all__ = ["KILL_GRACE", "SLOT", "AttemptSlot", "HorseKeeping", "executing"]
