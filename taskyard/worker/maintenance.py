"""The worker's maintenance thread: leases, heartbeats, reaping, retention, housekeeping."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import BackendUnavailable, CorruptTask

if TYPE_CHECKING:
    from taskyard.worker.worker import Worker

logger = logging.getLogger("taskyard.worker")

SETTLE_EVERY = 30.0
QUARANTINE_EVERY = 300.0
RETENTION_EVERY = 60.0


class Maintenance:
    """Every ``lease / 3`` seconds (2 s at most): extend this worker's leases (and pick up
    cancel requests), store async tasks' progress, record a heartbeat, and return expired
    leases of dead workers to the queue."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        # At most 2 s: also how soon an async task's progress is stored and a cancellation
        # request reaches it.
        self.period = max(0.2, min(worker.config.lease / 3, 2.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskyard-maintenance", daemon=True)
        self.reaped = 0
        self.last_ok = time.monotonic()
        self._last_settle = 0.0
        self._last_retention = 0.0
        self._last_sweep = time.monotonic()
        self._lost_at: float | None = None  # the database stopped answering
        self._back_at: float | None = None  # ... and answered again

    def start(self) -> None:
        try:
            self._heartbeat("running")
        except BackendUnavailable as exc:
            logger.warning("heartbeat failed: %s", exc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        try:
            self.worker.ops.forget_worker(self.worker.worker_id)
        except BackendUnavailable as exc:
            logger.warning("could not deregister worker %s: %s", self.worker.worker_id, exc)

    def _heartbeat(self, state: str) -> None:
        """Record this worker's heartbeat; raises ``BackendUnavailable``."""
        worker = self.worker
        worker.ops.heartbeat(
            worker.worker_id,
            worker.config.queues,
            worker.config.threads,
            state,
            worker.processed,
            worker.failed,
            os.getpid(),
        )

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.worker.ops.c.thread_done()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
                self.last_ok = time.monotonic()
                self.worker.db_ok_at = self.last_ok
            except BackendUnavailable as exc:
                self._lost_at = self._lost_at or time.monotonic()
                logger.warning("maintenance failed (%s); retrying in %.1fs", exc, self.period)
            except Exception:
                logger.exception("maintenance failed; retrying in %.1fs", self.period)

    def _in_outage_grace(self) -> bool:
        """After the database was away, wait one lease before judging others' leases: every
        live worker was cut off too, and needs that long to renew its leases and record what it
        finished meanwhile (reaping first would re-run those tasks and discard the outcome)."""
        back = self._back_at
        if back is None:
            return False
        if time.monotonic() - back >= self.worker.config.lease:
            self._back_at = None
            return False
        return True

    def _reap(self) -> list[Any]:
        ops = self.worker.ops
        try:
            return ops.reap_expired(self.worker.worker_id)
        except CorruptTask:
            self.worker.set_aside_corrupt()
            return ops.reap_expired(self.worker.worker_id)

    def tick(self) -> None:
        worker = self.worker
        ops = worker.ops
        held = worker.held_ids()
        flags = ops.extend_leases(worker.worker_id, held, worker.config.lease)
        # Always a round trip (it raises when the database is away): what tells this tick
        # reached the database, even with no lease to renew.
        self._heartbeat("stopping" if worker.stopping else "running")
        if self._lost_at is not None:
            self._lost_at, self._back_at = None, time.monotonic()
        newly_cancelled = []
        for result in worker.running_results():
            if flags.get(result.id) and not result._cancel_requested:
                result._cancel_requested = True
                newly_cancelled.append(result.id)
        runner = worker.runner
        if runner is not None:
            # async tasks: the coroutine is cancelled at its next await (it ends CANCELLED)
            runner.cancel(newly_cancelled, stopping=False)
            for result, progress in runner.control.take_pending():
                ops.set_progress(worker.worker_id, result.id, progress, worker.config.lease)
        # A task that finished (and was recorded) since ``held`` was read is not lost.
        still_held = set(worker.held_ids())
        lost = [i for i in held if i not in flags and i in still_held]
        if lost:
            logger.warning(
                "worker %s no longer holds the lease of %d running task(s) (it expired while "
                "the database was unreachable): another worker may run them again; their "
                "outcomes are recorded unless a newer attempt has begun",
                worker.worker_id,
                len(lost),
            )
        reaped = [] if self._in_outage_grace() else self._reap()
        if reaped:
            self.reaped += len(reaped)
            for row in reaped:
                logger.warning(
                    "task %s: lease of a lost worker expired; now %s", row["id"], row["status"]
                )
        now = time.monotonic()
        if now - self._last_settle >= SETTLE_EVERY:
            self._last_settle = now
            ops.settle_dependents()
            ops.forget_stale_workers(max(3600.0, worker.config.lease * 10))
        if now - self._last_sweep >= QUARANTINE_EVERY:
            self._last_sweep = now
            worker.set_aside_corrupt()
        options = worker.backend.options
        if (options["RESULT_RETENTION"] or options["FAILED_RETENTION"]) and (
            now - self._last_retention >= RETENTION_EVERY
        ):
            self._last_retention = now
            deleted = ops.apply_retention(options["RESULT_RETENTION"], options["FAILED_RETENTION"])
            if deleted:
                logger.info("retention: deleted %d old result(s)", deleted)
