"""The batching worker's executors: sync tasks on a pool of threads, async tasks as coroutines
on one event loop (``taskyard.tasks.loop.AsyncRunner``), each attempt through
``taskyard.tasks.execution`` (timeouts, retries with backoff, context, hooks), exactly as the
other workers run them. Free slots are counted separately for the two kinds, and the claim never
takes more than are free.

A sync task past its timeout is interrupted in its thread (``TaskTimeout`` raised there by the
watchdog); one that has not stopped ``STUCK_GRACE`` seconds later (blocked in a C call) is
*stuck*: ``stuck()`` reports it and the worker replaces its process (see ``batch_worker``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskyard.backends.redis.batch_claim import Claimed
from taskyard.exceptions import WorkerInterrupted
from taskyard.tasks.execution import Outcome, execute, fail_without_running
from taskyard.tasks.loop import AsyncRunner, LoopControl, Start
from taskyard.tasks.results import TaskResultStatus
from taskyard.worker.stopping import STUCK_GRACE

logger = logging.getLogger("taskyard.backends.redis")

S = TaskResultStatus


@dataclass(slots=True)
class Running:
    """An attempt handed to an executor, until its outcome is queued for recording."""

    claimed: Claimed
    thread: int = 0
    on_loop: bool = False
    stuck_after: float | None = None
    #: the worker gave this attempt up (handed it back): an outcome, if it comes, is dropped
    given_up: bool = False
    began: float = 0.0


Record = Callable[[Claimed, Outcome | None], None]


class Executor:
    """Threads and an event loop running claimed attempts; outcomes go to ``record``."""

    def __init__(
        self,
        worker_id: str,
        sender: type,
        threads: int,
        async_concurrency: int,
        record: Record,
    ) -> None:
        self.worker_id = worker_id
        self.sender = sender
        self.threads = threads
        self.async_concurrency = async_concurrency
        self.record = record
        self.control = LoopControl()  # progress and cancel flags of sync tasks
        self.runner: AsyncRunner | None = None
        # one lock, two conditions: executor threads wait for work, the claim loop for slots
        self.cond = threading.Condition()
        self.work = threading.Condition(self.cond._lock)  # type: ignore[attr-defined]
        self.buffer: deque[Claimed] = deque()
        self.running: dict[str, Running] = {}
        self.on_loop = 0
        #: how long sync attempts run, a moving average (seconds)
        self.mean_run = 0.0
        self.problem: str | None = None
        self._stopped = False
        self._workers: list[threading.Thread] = []

    def start(self) -> Executor:
        if self.async_concurrency > 0:
            self.runner = AsyncRunner("taskyard-batch-async").start()
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"taskyard-batch-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    # -- slots ------------------------------------------------------------------------------

    def free(self) -> tuple[int, int]:
        """Free (sync, async) slots."""
        with self.cond:
            busy_sync = len(self.running) - self.on_loop + len(self.buffer)
            return max(0, self.threads - busy_sync), max(0, self.async_concurrency - self.on_loop)

    def busy(self) -> int:
        with self.cond:
            return len(self.running) + len(self.buffer)

    def wait_for_slot(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait(timeout)

    def wait_for_threads(self, free: int, timeout: float) -> None:
        """Wait until ``free`` threads are free or nothing runs (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                busy = len(self.running) - self.on_loop + len(self.buffer)
                left = deadline - time.monotonic()
                if self.threads - busy >= free or busy == 0 or left <= 0:
                    return
                self.cond.wait(left)

    # -- running ----------------------------------------------------------------------------

    def submit(self, items: list[Claimed]) -> None:
        starts: list[Start] = []
        with self.cond:
            for claimed in items:
                if claimed.is_async and self.runner is not None:
                    entry = self.running[claimed.job_id] = Running(
                        claimed, self.runner.thread_id or 0, on_loop=True
                    )
                    self._deadline(entry)
                    self.on_loop += 1
                    starts.append(self._start(self.runner, claimed))
                else:
                    self.buffer.append(claimed)
            self.work.notify(len(self.buffer))
        if starts and self.runner is not None:
            self.runner.submit(starts)

    def _start(self, runner: AsyncRunner, claimed: Claimed) -> Start:
        task, result = claimed.task, claimed.result
        sender, worker_id = self.sender, self.worker_id
        return Start(
            claimed.job_id,
            task,
            result,
            lambda: runner.execute(task, result, worker_id=worker_id, sender=sender, claimed=True),
            lambda _result, outcome, error: self._loop_done(claimed, outcome, error),
        )

    def _deadline(self, entry: Running) -> None:
        timeout = entry.claimed.task.timeout
        if timeout is not None:
            entry.stuck_after = time.monotonic() + timeout + STUCK_GRACE

    def _loop(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.buffer and not self._stopped:
                        self.work.wait()
                    if self._stopped:
                        return
                    claimed = self.buffer.popleft()
                    entry = self.running[claimed.job_id] = Running(
                        claimed, threading.get_ident(), began=time.monotonic()
                    )
                    self._deadline(entry)
                self._run_one(claimed)
        except WorkerInterrupted:
            return
        finally:
            if not self._stopped:
                self.problem = f"executor thread {threading.current_thread().name} ended"
                logger.critical("batch worker %s: %s unexpectedly", self.worker_id, self.problem)

    def _run_one(self, claimed: Claimed) -> None:
        outcome: Outcome | None = None
        try:
            outcome = execute(
                claimed.task,
                claimed.result,
                worker_id=self.worker_id,
                sender=self.sender,
                control=self.control,
                claimed=True,
            )
        except WorkerInterrupted:
            raise
        except BaseException as exc:  # a bug, or something hostile: never end the executor
            logger.exception("task %s: unexpected error", claimed.job_id)
            fail_without_running(claimed.result, exc)
            outcome = Outcome(S.FAILED, exception=exc)
        finally:
            if outcome is not None:
                self._done(claimed, outcome)

    def _loop_done(
        self, claimed: Claimed, outcome: Outcome | None, error: BaseException | None
    ) -> None:
        if outcome is None and error is None:  # given up by a stopping worker
            with self.cond:
                if self.running.pop(claimed.job_id, None) is not None:
                    self.on_loop -= 1
                self.cond.notify()
            return
        if error is not None:
            logger.error("task %s: unexpected error: %r", claimed.job_id, error)
            fail_without_running(claimed.result, error)
            outcome = Outcome(S.FAILED, exception=error)
        assert outcome is not None
        self._done(claimed, outcome)

    def _done(self, claimed: Claimed, outcome: Outcome) -> None:
        with self.cond:
            entry = self.running.pop(claimed.job_id, None)
            if entry is not None and entry.on_loop:
                self.on_loop -= 1
            elif entry is not None:
                self.mean_run += 0.1 * (time.monotonic() - entry.began - self.mean_run)
            self.cond.notify()
            if entry is not None and entry.given_up:
                logger.warning(
                    "task %s: attempt %d ended (%s) after this worker gave it up; not recorded",
                    claimed.job_id,
                    claimed.attempt,
                    outcome.status.value,
                )
                return
        self.record(claimed, outcome)

    # -- control ----------------------------------------------------------------------------

    def attempts(self) -> list[Running]:
        """Running attempts (for lease renewal), not given up."""
        with self.cond:
            return [r for r in self.running.values() if not r.given_up]

    def progress(self) -> dict[str, str]:
        """New progress per job id, as rq ``meta`` JSON (taken: each is written once)."""
        from taskyard.backends.redis.record import progress_meta

        items = self.control.take_pending()
        if self.runner is not None:
            items += self.runner.control.take_pending()
        return {result.id: progress_meta(progress) for result, progress in items}

    def cancel_requested(self, job_ids: list[str]) -> None:
        """Someone cancelled these running tasks: sync ones see ``is_cancelled()``, coroutines
        are cancelled at their next ``await``."""
        on_loop = []
        with self.cond:
            for job_id in job_ids:
                entry = self.running.get(job_id)
                if entry is None:
                    continue
                entry.claimed.result._cancel_requested = True
                if entry.on_loop:
                    on_loop.append(job_id)
        if on_loop and self.runner is not None:
            self.runner.cancel(on_loop, stopping=False)

    def stuck(self) -> list[Running]:
        """Attempts past their timeout + ``STUCK_GRACE`` (marked given up)."""
        now = time.monotonic()
        with self.cond:
            found = [
                r
                for r in self.running.values()
                if r.stuck_after is not None and now > r.stuck_after and not r.given_up
            ]
            for entry in found:
                entry.given_up = True
        return found

    def take_unstarted(self) -> list[Claimed]:
        with self.cond:
            items = list(self.buffer)
            self.buffer.clear()
            return items

    def give_up(self) -> list[Running]:
        """Every running attempt, marked given up (its outcome will be dropped)."""
        with self.cond:
            found = [r for r in self.running.values() if not r.given_up]
            for entry in found:
                entry.given_up = True
        if self.runner is not None:
            self.runner.cancel([r.claimed.job_id for r in found if r.on_loop], stopping=True)
        return found

    def wait_idle(self, timeout: float | None, stop: Callable[[], bool]) -> bool:
        """Wait until nothing runs (True) or ``timeout`` passes / ``stop()`` turns true."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while any(not r.given_up for r in self.running.values()) or self.buffer:
                if stop() or (deadline is not None and time.monotonic() >= deadline):
                    return False
                self.cond.wait(0.1)
        return True

    def stop(self) -> None:
        with self.cond:
            self._stopped = True
            self.work.notify_all()
            self.cond.notify_all()
        if self.runner is not None:
            self.runner.stop()

    def check_loop(self) -> Any:
        return self.runner.check_blocked() if self.runner is not None else None


__all__ = ["Executor", "Running"]
