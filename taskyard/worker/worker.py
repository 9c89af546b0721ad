"""``Worker``: claims Database-backend tasks in batches and runs them on a pool of threads.

One loop thread claims (never more tasks than it has free threads: every claimed task starts at
once, so a worker's death never charges an attempt to a task that had not started), records
finished attempts in batches and sleeps on ``LISTEN``/``data_version`` when idle; ``threads``
executor threads run tasks (with ``inline``, one executor on the main thread, where a timeout
interrupts blocking calls with ``SIGALRM``); a maintenance thread extends leases, heartbeats,
reaps expired leases and applies result retention.

Nothing a task does, and nothing a stored row names, can end an executor thread. A task that
overruns its timeout and cannot be interrupted (blocked in a C call) makes the worker replace
its process: the other work is handed back uncharged, the attempt is recorded as
``TaskTimeout``, and the process is re-executed (``on_stuck="exec"``), exits for its supervisor
(``"exit"``) or returns ``EXIT_REPLACE`` from ``run()`` (``"return"``). See
``docs/workers.md`` for shutdown and failure semantics.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.connectors import Row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.command import check_seconds
from taskyard.exceptions import BackendUnavailable, CorruptTask
from taskyard.tasks.execution import (
    Outcome,
    announce_outcome,
    fail_without_running,
)
from taskyard.tasks.loop import AsyncRunner
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.worker.executing import Executing
from taskyard.worker.maintenance import Maintenance
from taskyard.worker.stopping import Running, Stopping

logger = logging.getLogger("taskyard.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerConfig:
    """Everything ``taskyard worker`` can be told (see ``docs/workers.md``)."""

    queues: Sequence[str] | None = ("default",)  # None: every queue
    threads: int = 5
    batch_size: int = 10
    interval: float = 0.5
    lease: float = 20.0
    worker_id: str = field(default_factory=default_worker_id)
    burst: bool = False
    shutdown_timeout: float = 30.0
    max_tasks: int | None = None
    qualifiers: dict[str, str] = field(default_factory=dict)
    exclude_queues: Sequence[str] = ()
    handle_signals: bool = True
    #: run the (single) executor on the main thread, where SIGALRM stops a timed-out task
    inline: bool = False
    #: what to do with this process when a timed-out task cannot be stopped
    on_stuck: Literal["exec", "exit", "return"] = "return"
    #: async tasks in flight on the worker's event loop at most (0: run them on the threads)
    async_concurrency: int = 500

    def __post_init__(self) -> None:
        # A non-finite or huge number of seconds overflows the clocks deep inside the worker
        # (a lease end, a condition wait) and kills its loop: refuse it here, for every caller.
        check_seconds(self.interval, "interval", strict=False)
        check_seconds(self.lease, "lease")
        check_seconds(self.shutdown_timeout, "shutdown_timeout", strict=False)


class Worker(Executing, Stopping):
    """Run tasks from one ``DatabaseBackend`` until stopped (or drained, with ``burst``)."""

    def __init__(
        self,
        backend: DatabaseBackend,
        config: WorkerConfig,
        on_start: Callable[[TaskResult[Any], float | None], None] | None = None,
        on_end: Callable[[TaskResult[Any]], None] | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.ops = QueueOps(backend)
        self.worker_id = config.worker_id
        self._on_start = on_start
        self._on_end = on_end
        # One lock, two conditions: the claim loop waits on ``_cond`` (finished tasks, work
        # hints, stop), executor threads on ``_work`` (claimed rows): a finished task must not
        # wake every idle executor (with ``--threads 100``, a hundred wake-ups per task).
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._work = threading.Condition(lock)
        self._buffer: deque[Row] = deque()
        self._running: dict[str, Running] = {}
        self._finished: list[Finished] = []
        self._hint = False
        self._stop_claiming = threading.Event()
        self._cold = threading.Event()
        self._done = threading.Event()
        self._interrupt_main = False
        self._stuck: list[Running] = []
        self._executors: list[threading.Thread] = []
        self.runner: AsyncRunner | None = None
        self._on_loop = 0  # entries of _running that are coroutines on the event loop
        self.started_count = 0
        self.processed = 0
        self.failed = 0
        self.succeeded = 0
        self.fenced = 0
        self.quarantined = 0
        self.loop_seen = time.monotonic()
        self.db_ok_at = time.monotonic()
        self.state = "starting"
        self.problem: str | None = None
        #: set while statements keep failing on stored data that could not be set aside
        self.problem_data: str | None = None
        self.exit_code = 0
        self.maintenance = Maintenance(self)

    # -- public control ------------------------------------------------------------------------

    def stop(self, cold: bool = False) -> None:
        """Stop claiming (warm); with ``cold``, also give up running tasks at once."""
        self._stop_claiming.set()
        if cold:
            self._cold.set()
        with self._cond:
            self._cond.notify_all()
            self._work.notify_all()

    def held_ids(self) -> list[str]:
        """Ids of every task this worker holds a lease on (running or claimed)."""
        with self._cond:
            running = [i for i, r in self._running.items() if not r.given_up]
            return [*running, *(str(row["id"]) for row in self._buffer)]

    def running_results(self) -> list[TaskResult[Any]]:
        with self._cond:
            return [r.result for r in self._running.values() if r.result is not None]

    @property
    def stopping(self) -> bool:
        return self._stop_claiming.is_set()

    def can_execute(self) -> bool:
        """False once an executor thread has ended while the worker was not stopping."""
        return self.problem is None

    # -- the main loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return the exit status (0 clean, 1 tasks were abandoned,
        ``EXIT_REPLACE`` when the process must be replaced, ``EXIT_BROKEN``)."""
        on_main = threading.current_thread() is threading.main_thread()
        if self.config.handle_signals and on_main:
            self._install_signals()
        inline = self.config.inline and on_main and self.config.threads == 1
        logger.info(
            "worker %s starting: backend %s, queues %s, %d thread(s)%s, batch %d, lease %ss",
            self.worker_id,
            self.backend.alias,
            ",".join(self.config.queues) if self.config.queues is not None else "*",
            self.config.threads,
            " (on the main thread)" if inline else "",
            self.config.batch_size,
            self.config.lease,
        )
        self._recover_previous_run()
        self._sweep_corrupt()
        self._check_autovacuum()
        if self.config.async_concurrency > 0:
            self.runner = AsyncRunner().start()
        self._listener = threading.Thread(target=self._listen, name="taskyard-listen", daemon=True)
        self._listener.start()
        self.maintenance.start()
        self.state = "running"
        if inline:
            self._executors = [threading.main_thread()]
            loop = threading.Thread(target=self._loop_then_stop, name="taskyard-loop", daemon=True)
            loop.start()
            self._execute_loop()
            while loop.is_alive():
                loop.join(0.2)
        else:
            self._executors = [
                threading.Thread(target=self._execute_loop, name=f"taskyard-exec-{i}", daemon=True)
                for i in range(self.config.threads)
            ]
            for thread in self._executors:
                thread.start()
            self._loop_then_stop()
        return self.exit_code

    def _loop_then_stop(self) -> None:
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        config = self.config
        backoff = 0.0
        while not self._stop_claiming.is_set():
            self.loop_seen = time.monotonic()
            if self._check_executors() or self._check_overruns():
                break
            if self.runner is not None:
                self.runner.check_blocked()
            if config.max_tasks is not None and self.started_count >= config.max_tasks:
                logger.info("worker %s reached --max-tasks %d", self.worker_id, config.max_tasks)
                self._stop_claiming.set()
                break
            claimed, failed = 0, False
            room, async_room = self._room()
            has_room = room > 0 or async_room > 0
            if has_room:
                try:
                    claimed = self._claim(room, async_room)
                    backoff = 0.0
                    self.db_ok_at = time.monotonic()
                except CorruptTask as exc:
                    self._quarantine(exc)
                    failed = True
                except Exception as exc:  # the database away, or anything unforeseen
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    if isinstance(exc, BackendUnavailable):
                        logger.warning("claim failed (%s); retrying in %.1fs", exc, backoff)
                    else:
                        logger.exception("claim failed; retrying in %.1fs", backoff)
                    self._wait(backoff)
                    failed = True
            # Outcomes are written after the claim: a freed thread gets its next task one
            # statement sooner (and they are written before any wait, so never held back).
            self._flush()
            if claimed > 0 or failed:
                continue
            if config.burst and has_room and self._idle():
                self._flush()
                if self._idle() and self._claim(*self._room()) == 0:
                    logger.info("worker %s: burst finished, nothing left to do", self.worker_id)
                    return
                continue
            # Nothing claimed. With room for both kinds, nothing is due: sleep until the next
            # task is. With one kind's slots all taken, tasks of that kind may be due but not
            # ours to take yet: sleep until a slot frees (a finished task wakes this loop).
            self._wait(self._idle_timeout() if room > 0 and async_room > 0 else config.interval)

    def _room(self) -> tuple[int, int]:
        """Tasks this worker can start now, (sync, async): free executor threads and free
        event-loop slots. Claimed tasks start at once: a claim is a started attempt."""
        with self._cond:
            threads = self.config.threads - (len(self._running) - self._on_loop)
            sync_room = threads - len(self._buffer)
            if self.runner is None:
                return sync_room, sync_room  # async tasks run on the threads too
            return sync_room, self.config.async_concurrency - self._on_loop

    def _claim(self, room: int, async_room: int) -> int:
        limit, async_limit = min(self.config.batch_size, room), async_room
        if self.config.max_tasks is not None:
            left = self.config.max_tasks - self.started_count - len(self._buffer)
            limit, async_limit = min(limit, left), min(async_limit, left)
        limit, async_limit = max(0, limit), max(0, async_limit)
        if limit + async_limit <= 0:
            return 0
        rows = self.ops.claim(
            self.worker_id,
            self.config.queues,
            limit,
            self.config.lease,
            self.config.qualifiers,
            self.config.exclude_queues,
            async_limit=async_limit,
        )
        if not rows:
            return 0
        runner = self.runner
        threaded = [r for r in rows if runner is None or not r.get("is_async")]
        if runner is not None and len(threaded) < len(rows):
            starts = [self._start_on_loop(runner, r) for r in rows if r.get("is_async")]
            runner.submit([start for start in starts if start is not None])
        if threaded:
            with self._cond:
                self._buffer.extend(threaded)
                self._work.notify(len(threaded))
        return len(rows)

    def set_aside_corrupt(self) -> int:
        """Set aside tasks whose stored data cannot be read (``QueueOps.quarantine``); return
        how many. Raises ``BackendUnavailable``/``CorruptTask`` if that fails too."""
        rows = self.ops.quarantine()
        self.quarantined += len(rows)
        for row in rows:
            logger.error(
                "task %s: stored data cannot be read; set aside (now %s)", row["id"], row["status"]
            )
        return len(rows)

    def _check_autovacuum(self) -> None:
        try:
            off = self.ops.autovacuum_off()
        except (BackendUnavailable, CorruptTask):
            return
        if off:
            logger.warning(
                "autovacuum is off for taskyard_task: dead rows of finished attempts pile up "
                "and claims slow down run after run; turn it on, or VACUUM the table regularly "
                "(see docs/backends/database.md)"
            )

    def _sweep_corrupt(self) -> None:
        """At start, set aside pending rows no statement would fail on but no claim can take
        (a kind that is neither sync nor async): otherwise they would wait for ever."""
        try:
            self.set_aside_corrupt()
        except (BackendUnavailable, CorruptTask) as exc:
            logger.warning("could not look for unreadable tasks at start (%s)", exc)

    def _quarantine(self, exc: Exception) -> None:
        """A statement failed on a task's unreadable data: set such tasks aside, carry on."""
        try:
            found = self.set_aside_corrupt()
        except (BackendUnavailable, CorruptTask) as again:
            logger.error("cannot set corrupt tasks aside (%s); retrying", again)
            found = 0
        if not found:
            self.problem_data = str(exc)
            logger.error("a statement failed on stored data (%s); retrying in 1s", exc)
            self._wait(1.0)
        else:
            self.problem_data = None

    def _idle(self) -> bool:
        with self._cond:
            return not self._buffer and not self._running and not self._finished

    def _idle_timeout(self) -> float:
        timeout = self.config.interval
        try:
            at = self.ops.next_available_at(self.config.queues)
        except BackendUnavailable:
            return timeout
        if at is not None:
            from taskyard.tasks.execution import utcnow

            timeout = min(timeout, max(0.0, (at - utcnow()).total_seconds()))
        return timeout

    def _wait(self, timeout: float) -> None:
        """Sleep until woken (work hint, finished task, stop) or ``timeout`` passes."""
        with self._cond:
            if self._finished or self._hint or self._stop_claiming.is_set():
                self._hint = False
                return
            self._cond.wait(timeout)
            self._hint = False

    def _complete_apart(self, batch: list[Finished]) -> set[str]:
        """Record ``batch`` one outcome at a time. An outcome the database refuses on its own
        (its data cannot be stored: a return value, progress or error text it rejects) is
        replaced, in ``batch``, by a FAILED one whose error says so. Raises
        ``BackendUnavailable``, or ``CorruptTask`` when even that is refused (the stored row
        itself is unreadable: then the rows are set aside and the batch retried)."""
        written: set[str] = set()
        for index, item in enumerate(batch):
            try:
                written |= self.ops.complete(self.worker_id, [item])
                continue
            except CorruptTask as exc:
                refused = exc
            if self.set_aside_corrupt():  # the stored row was unreadable; it is repaired now
                try:
                    written |= self.ops.complete(self.worker_id, [item])
                    continue
                except CorruptTask as exc:
                    refused = exc
            result = item.result
            kept = (result._return_value, result._progress, result._status, result._finished_at)
            errors = len(result._errors)
            error = CorruptTask(
                f"the outcome of this attempt ({item.outcome.status.value}) could not be "
                f"stored: {refused}"
            )
            result._return_value = None
            result._progress = None
            fail_without_running(result, error)
            replacement = Finished(result, Outcome(TaskResultStatus.FAILED, exception=error))
            try:
                written |= self.ops.complete(self.worker_id, [replacement])
            except BaseException:
                # not recorded after all: the batch is retried as it was
                (result._return_value, result._progress, result._status) = kept[:3]
                result._finished_at = kept[3]
                del result._errors[errors:]
                raise
            logger.error("task %s: %s; recorded as FAILED", result.id, error)
            batch[index] = replacement
        return written

    def _listen(self) -> None:
        """Turn database notifications into wake-ups of the loop."""
        try:
            while not self._done.is_set():
                if self.ops.wait_for_work(1.0, self._done.is_set):
                    with self._cond:
                        self._hint = True
                        self._cond.notify_all()
        finally:
            self.ops.c.thread_done()

    def _flush(self) -> None:
        """Write finished attempts (one statement) and announce them; keep them on failure."""
        with self._cond:
            if not self._finished:
                return
            batch, self._finished = self._finished, []
        try:
            try:
                written = self.ops.complete(self.worker_id, batch)
            except CorruptTask as exc:
                # The database refused data of this batch: record its outcomes one by one, so
                # an outcome it cannot hold fails its own task only, never the whole batch.
                logger.warning("recording %d finished task(s) failed (%s)", len(batch), exc)
                written = self._complete_apart(batch)
            self.db_ok_at = time.monotonic()
        except (BackendUnavailable, CorruptTask) as exc:
            logger.warning("recording %d finished task(s) failed (%s); will retry", len(batch), exc)
            with self._cond:
                self._finished[:0] = batch
            if isinstance(exc, CorruptTask):
                self._quarantine(exc)
            else:
                time.sleep(0.5)
            return
        sender = type(self.backend)
        for item in batch:
            if item.result.id in written:
                announce_outcome(sender, item.result, item.outcome)
            else:
                self.fenced += 1
                logger.warning(
                    "task %s: attempt %d finished after a newer attempt began elsewhere (its "
                    "lease had expired); its outcome (%s) was not recorded",
                    item.result.id,
                    item.result.attempts,
                    item.outcome.status.value,
                )
