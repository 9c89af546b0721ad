"""``taskyard rqworker --worker-class batch`` (the default): rq's queues and job format at Redis
speed.

One process claims up to ``batch_size`` due jobs per round trip (``batch_claim``), runs them on
``threads`` executor threads and, for async tasks, on an event loop (``batch_exec``), and
records finished attempts many per round trip (``batch_record``). In Redis it leaves what rq's
own worker leaves: the worker registered in rq's worker registry with its heartbeat, each job
``started`` in rq's ``StartedJobRegistry`` with an rq execution while it runs, then
``finished``/``failed`` with rq's result stream entry and registries - so ``rq info``,
rq-dashboard, ``Job.fetch`` and plain rq workers on the same queues keep working.

Threads of one worker process:

* the main thread claims: when slots are free it runs the claim script; when nothing is
  waiting it blocks on Redis (``BLMOVE`` of the first queue onto itself) so a new job starts
  within a millisecond; it also watches for stuck attempts and signals;
* the recorder writes outcomes as they come (one script per batch);
* the keeper renews every running attempt's lease in one script per second, writes progress,
  reads cancellation flags, keeps rq's worker heartbeat and runs rq's registry clean-ups;
* the executors, the event loop, and the reaper (``recovery``) and rq's scheduler as rq-class
  workers have them.

Shutdown: the first SIGTERM/SIGINT stops claiming and lets running attempts finish (up to
``shutdown_timeout``; past it they are handed back as interrupted); a second one hands every
running attempt back at once and exits non-zero. Claimed attempts that had not started go back
uncounted. A sync task that cannot be stopped at its timeout (stuck in a C call) makes the
worker hand everything else back, record ``TaskTimeout`` for it and replace its process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from taskyard.backends.redis.batch_claim import EXECUTION_TTL, Claimed, Claimer, rq_now
from taskyard.backends.redis.batch_exec import Executor, Running
from taskyard.backends.redis.batch_record import Recorder
from taskyard.backends.redis.keys import DEFAULT_LEASE, LEASES_KEY, as_str
from taskyard.backends.redis.scripts import preload, script
from taskyard.backends.redis.settle import interrupt
from taskyard.exceptions import TaskTimeout
from taskyard.tasks.execution import Outcome, record_failure
from taskyard.worker.stopping import EXIT_REPLACE, replace_process

logger = logging.getLogger("taskyard.backends.redis")

DEFAULT_THREADS = 16
"""Executor threads of a batching worker: claims and writes take as many jobs as there are free
threads, so more threads mean fewer round trips per task; idle ones cost nothing."""
IDLE_WAIT = 1.0
"""Longest block on Redis of an idle worker listening to one queue (then it looks again)."""
MULTI_QUEUE_WAIT = 0.2
"""... listening to several rq queues (it blocks on the first one only)."""
KEEP_EVERY = 1.0
"""Longest pause between lease renewals (a sixth of the lease when that is shorter)."""
KEEP_RETRY = 0.1
"""Pause before renewing again after a renewal failed."""
STUCK_HANDBACK_WAIT = 1.0
"""Seconds other attempts get to finish before a worker with a stuck attempt replaces itself."""
CYCLE_FIRST_BINARY = 17
"""``batch_cycle.lua``: ARGV index of the first exc_info (10 claim + 6 outcome arguments)."""
RECORD_GATHER = 0.005
"""Longest wait, while attempts are running, for ``batch_size`` outcomes to write at once."""
GATHER = 0.002
"""Longest pause, under load, to let more slots free up (or more outcomes queue) before a claim
(or a write): a few milliseconds for several times fewer round trips."""
GATHER_BELOW = 0.02
"""... taken only while sync attempts run shorter than this on average: longer ones free few
slots in a pause, which then only delays the next task (100 ms tasks on 100 threads: 4%)."""


class BatchWorker:
    """One batching worker process (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        queues: list[str],
        name: str,
        *,
        sender: type,
        threads: int = DEFAULT_THREADS,
        async_concurrency: int = 100,
        batch_size: int = 50,
        lease: float = DEFAULT_LEASE,
        shutdown_timeout: float | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        with_scheduler: bool = False,
        reap_interval: float = 1.0,
        maintenance_interval: float = 600.0,
        logging_level: str | None = "INFO",
        handle_signals: bool = True,
        on_stuck: str = "exec",
        on_beat: Callable[[], None] | None = None,
    ) -> None:
        from taskyard.backends.redis.serializer import JSONSerializer
        from taskyard.backends.redis.worker import TaskyardSimpleWorker

        self.client = client
        self.name = name
        self.lease = lease
        self.batch_size = batch_size
        self.shutdown_timeout = shutdown_timeout
        self.burst = burst
        self.max_jobs = max_jobs
        self.with_scheduler = with_scheduler
        self.reap_interval = reap_interval
        self.maintenance_interval = maintenance_interval
        self.logging_level = logging_level
        self.handle_signals = handle_signals
        self.on_stuck = on_stuck
        self.on_beat = on_beat
        # rq's own worker object does rq's bookkeeping: registration, heartbeat, the priority
        # levels of the queues, rq's scheduler and registry clean-ups (it never takes a job).
        self.rq: Any = TaskyardSimpleWorker(
            queues, name=name, connection=client, serializer=JSONSerializer
        )
        self.claimer = Claimer(client, name, lease, sender)
        self.recorder = Recorder(client, name, sender)
        self.executor = Executor(name, sender, threads, async_concurrency, self._ended)
        self.claimed_total = 0
        self._async_seen = False
        self._gathered = False
        self.state = "starting"
        self.exit_code = 0
        self._stop = threading.Event()
        self._cold = threading.Event()
        self._finished = threading.Event()
        self._stuck: list[Running] = []
        self._reaper: Any = None
        self._threads: list[threading.Thread] = []
        self._last_maintenance = time.monotonic()
        self._keep_lock = threading.Lock()

    # -- state for health checks ------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def alive(self) -> bool:
        return self.state in ("idle", "busy")

    def stop(self, cold: bool = False) -> None:
        self._stop.set()
        if cold:
            self._cold.set()
        with self.executor.cond:
            self.executor.cond.notify_all()

    # -- running ----------------------------------------------------------------------------

    def run(self) -> int:
        from taskyard.backends.redis.clients import fresh_client, pin_driver_info

        pin_driver_info(self.client)
        preload(self.client)
        if self.handle_signals:
            self._install_signals()
        self.rq.register_birth()
        self.rq.set_state("idle")
        if self.with_scheduler:
            self.rq._start_scheduler(self.burst, self.logging_level)
        if self.reap_interval > 0:
            from taskyard.backends.redis.worker import Reaper

            self._reaper = Reaper(fresh_client(self.client), self.reap_interval, self.lease)
            self._reaper.start()
        self.executor.start()
        for target, name in ((self._record_loop, "recorder"), (self._keep_loop, "keeper")):
            thread = threading.Thread(target=target, name=f"taskyard-batch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.state = "idle"
        logger.info(
            "Listening on %s (batch worker %s: %d threads, %d async, batches of %d)",
            ", ".join(q.name for q in self.rq.queues),
            self.name,
            self.executor.threads,
            self.executor.async_concurrency,
            self.batch_size,
        )
        try:
            self._claim_loop()
        finally:
            self._shutdown()
        return self.exit_code

    def _claim_loop(self) -> None:
        from redis.exceptions import ConnectionError, TimeoutError

        backoff = 0.5
        while not self._stop.is_set():
            if self._check_stuck() or self.executor.problem is not None:
                self.exit_code = EXIT_REPLACE if self._stuck else 70
                return
            self.executor.check_loop()
            try:
                if not self._claim_round():
                    return
                backoff = 0.5
            except (ConnectionError, TimeoutError) as exc:
                logger.warning("Redis unreachable (%s); trying again in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)  # soon: a lost claim is adopted in time

    def _claim_round(self) -> bool:
        """Claim what there is room for; wait when there is none or nothing is due. False
        when a burst or ``max_jobs`` run is over."""
        free_sync, free_async = self.executor.free()
        # Which kind a job is shows only once it is claimed: event-loop slots count as room
        # while async tasks are being seen, so a run of sync tasks never over-claims.
        async_room = min(free_async, self.batch_size) if self._async_seen else 0
        room = min(self.batch_size, free_sync + async_room)
        if self.max_jobs is not None:
            room = min(room, self.max_jobs - self.claimed_total)
            if room <= 0 and self.executor.busy() == 0 and self.recorder.pending() == 0:
                return False
        if room <= 0:
            self.executor.wait_for_slot(0.1)
            return True
        small = room < min(self.batch_size, self.executor.threads) // 2
        short = self.executor.mean_run < GATHER_BELOW
        if small and short and not self._gathered and self.executor.busy():
            # a moment for more attempts to end (once): fewer, larger claims under load
            self._gathered = True
            self.executor.wait_for_threads(min(self.batch_size, self.executor.threads), GATHER)
            return True
        self._gathered = False
        queues = self.rq._ordered_queues  # re-reads the priority levels once a second
        keys = [q.key for q in queues]
        items = self._claim(keys, room)
        if items:
            self.state = "busy"
            self._dispatch(items, free_sync, free_async)
            return True
        if self.burst:
            if self.executor.busy() == 0 and self.recorder.pending() == 0:
                # Look once more: an outcome written since the claim above may have put a
                # retry back on the queue.
                items = self._claim(keys, room)
                if not items:
                    return False
                self._dispatch(items, free_sync, free_async)
                return True
            self.executor.wait_for_slot(0.02)
            return True
        if self.executor.busy() == 0:
            self.state = "idle"
        self.claimer.wait(keys, IDLE_WAIT if len(keys) == 1 else MULTI_QUEUE_WAIT)
        return True

    def _claim(self, keys: list[str], room: int) -> list[Claimed]:
        """Claim; outcomes waiting to be written go in the same round trip while attempts run
        short (for long ones the recorder writes them, and the claim returns sooner)."""
        outcomes = (
            self.recorder.take()
            if self.claimer.clean and self.executor.mean_run < GATHER_BELOW
            else []
        )
        if not outcomes:
            return self.claimer.claim(keys, room)
        args = [*self.recorder.fixed_args(), *self.recorder.encode(outcomes, CYCLE_FIRST_BINARY)]
        try:
            written, items = self.claimer.cycle(keys, room, args)
        except Exception:
            self.recorder.give_back(outcomes)  # the recorder writes them (the script is fenced)
            raise
        self.recorder.complete(outcomes, written)
        return items

    def _dispatch(self, items: list[Claimed], free_sync: int, free_async: int) -> None:
        """Run what was claimed. Outcomes decided without running are recorded at once; jobs
        beyond the free slots of their kind go back, uncounted, to the front of their queue."""
        run: list[Claimed] = []
        overflow: list[Claimed] = []
        loop = self.executor.runner is not None
        saw_async = False
        for claimed in items:
            if claimed.decided is not None:
                self.recorder.add(claimed, claimed.decided)
            elif claimed.undo_due is not None:
                self.recorder.add(claimed, None)
            elif claimed.is_async and loop:
                saw_async = True
                if free_async > 0:
                    free_async -= 1
                    run.append(claimed)
                else:
                    overflow.append(claimed)
            elif free_sync > 0:
                free_sync -= 1
                run.append(claimed)
            else:
                overflow.append(claimed)
        self._async_seen = saw_async
        for claimed in reversed(overflow):  # pushed to the front one by one: keep their order
            claimed.undo_due = -1
            self.recorder.add(claimed, None)
        self.claimed_total += len(items) - len(overflow)
        self.executor.submit(run)
        if any(c.lease < self.lease for c in run):
            self.keep()  # the claim wrote this worker's lease: shorten it to the task's at once

    def _ended(self, claimed: Claimed, outcome: Outcome | None) -> None:
        self.recorder.add(claimed, outcome)

    # -- the recorder and the keeper ---------------------------------------------------------

    def _record_loop(self) -> None:
        while not self._finished.is_set():
            if self.recorder.wait_for_work(0.5):
                # under load, a few milliseconds gather outcomes into fewer, larger writes
                self.recorder.gather(self.batch_size, RECORD_GATHER, self.executor.busy)
                try:
                    self.recorder.flush()
                except Exception:
                    logger.exception("recording outcomes failed; trying again")
                    time.sleep(0.5)

    def _keep_loop(self) -> None:
        pause = self._keep_every()
        reported = 0.0
        while not self._finished.wait(pause):
            if self.on_beat is not None:
                self.on_beat()  # the supervising parent watches this (``batch_supervisor``)
            try:
                self.keep()
                pause, reported = self._keep_every(), 0.0
            except Exception as exc:
                # Redis away or still loading: try again soon, so that leases are renewed
                # within moments of its return, long before any reaper judges them
                if time.monotonic() - reported > 5.0:
                    reported = time.monotonic()
                    logger.warning("lease renewal failed: %s: %s", type(exc).__name__, exc)
                pause = KEEP_RETRY

    def _keep_every(self) -> float:
        leases = [self.lease, *(e.claimed.lease for e in self.executor.attempts())]
        return max(0.05, min(KEEP_EVERY, *(lease / 6 for lease in leases)))

    def keep(self) -> None:
        """One renewal round trip for every running attempt, plus rq's worker heartbeat."""
        with self._keep_lock:
            self._keep()

    def _keep(self) -> None:
        attempts = self.executor.attempts()
        progress = self.executor.progress()
        now = time.time()
        args: list[Any] = [self.recorder.prefix, LEASES_KEY, "", rq_now(), repr(now)]
        args.append(EXECUTION_TTL)
        for entry in attempts:
            c = entry.claimed
            args += [c.job_id, c.origin, c.exec_id, progress.get(c.job_id, ""), repr(now + c.lease)]
        for c in self.recorder.unwritten():
            args += [c.job_id, c.origin, c.exec_id, "", repr(now + c.lease)]
        if len(args) > 6:
            flags = script(self.client, "batch_renew")(keys=[], args=args)
            cancelled = [
                e.claimed.job_id
                for e, flag in zip(attempts, flags[: len(attempts)], strict=True)
                if as_str(flag) == "1" and not e.claimed.result._cancel_requested
            ]
            if cancelled:
                self.executor.cancel_requested(cancelled)
        self.rq.heartbeat()
        if time.monotonic() - self._last_maintenance >= self.maintenance_interval:
            self._last_maintenance = time.monotonic()
            self.rq.clean_registries()

    # -- stuck attempts, signals, shutdown ---------------------------------------------------

    def _check_stuck(self) -> bool:
        stuck = self.executor.stuck()
        if not stuck:
            return False
        for entry in stuck:
            logger.error(
                "task %s ran past its timeout of %gs and could not be interrupted (blocked in a "
                "call Python cannot interrupt): replacing this worker process",
                entry.claimed.job_id,
                entry.claimed.task.timeout,
            )
        self._stuck = stuck
        self._stop.set()
        return True

    def _install_signals(self) -> None:
        from taskyard.worker.signals import install_stop_signals

        install_stop_signals(lambda cold: self.stop(cold=cold), same_stop_within=1.0)

    def _shutdown(self) -> None:
        self.state = "stopping"
        self._stop.set()
        replacing = bool(self._stuck)
        unstarted = self.executor.take_unstarted()
        for claimed in unstarted:
            claimed.undo_due = -1
            self.recorder.add(claimed, None)  # never began: back to the front, uncounted
        if unstarted:
            logger.info("handing back %d claimed task(s) that had not started", len(unstarted))
        wait = STUCK_HANDBACK_WAIT if replacing else self.shutdown_timeout
        self.executor.wait_idle(wait, self._cold.is_set)
        abandoned = self.executor.give_up()
        self._flush()
        if abandoned:
            self._hand_back(abandoned, replacing)
        self._record_stuck()
        self._finished.set()
        self.executor.stop()
        self._flush()
        if self._reaper is not None:
            self._reaper.stop()
        try:
            if self.rq.scheduler:
                self.rq.stop_scheduler()
            self.rq.register_death()
        except Exception as exc:
            logger.warning("could not register this worker's death: %s", exc)
        self.state = "stopped"
        logger.info(
            "batch worker %s stopped: %d claimed, %d outcomes superseded",
            self.name,
            self.claimed_total,
            self.recorder.superseded,
        )
        if replacing:
            self.exit_code = EXIT_REPLACE
            replace_process(self.on_stuck)

    def _flush(self) -> None:
        try:
            self.recorder.flush()
        except Exception:
            logger.exception(
                "could not record outcomes; leases will run out and the reaper "
                "will hand the attempts back"
            )

    def _hand_back(self, abandoned: list[Running], replacing: bool) -> None:
        if replacing:
            why = (
                f"worker {self.name} was replaced: another task could not be stopped at its timeout"
            )
        else:
            how = "cold" if self._cold.is_set() else f"timeout {self.shutdown_timeout:g}s"
            why = f"worker {self.name} shut down ({how}) while the attempt was running"
        for entry in abandoned:
            c = entry.claimed
            try:
                interrupt(self.client, c.job_id, c.attempt, why, worker=self.name)
            except Exception:
                logger.exception("could not hand back %s; its lease will run out", c.job_id)
        logger.warning("gave up %d running task(s) for another worker: %s", len(abandoned), why)
        self.exit_code = 1

    def _record_stuck(self) -> None:
        """Record ``TaskTimeout`` for attempts that could not be stopped (last, right before the
        process is replaced: a retry must not start while the old run still executes)."""
        for entry in self._stuck:
            c = entry.claimed
            error = TaskTimeout(
                f"task ran longer than its timeout of {c.task.timeout:g}s and could not be "
                f"interrupted: worker {self.name} replaced its process to stop it"
            )
            self.recorder.add(c, record_failure(c.task, c.result, error))
        if self._stuck:
            self._flush()


def default_name() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


__all__ = ["BatchWorker", "default_name"]
