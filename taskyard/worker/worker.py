"""``Worker``: claims Database-backend tasks in batches and runs them on a pool of threads.

One loop thread claims (``batch_size`` rows per statement), records finished attempts in
batches and sleeps on ``LISTEN``/``data_version`` when idle; ``threads`` executor threads run
tasks; a maintenance thread extends leases, heartbeats, reaps expired leases and applies
result retention. See ``docs/workers.md`` for shutdown and failure semantics.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.claimed import open_claimed
from taskyard.backends.database.connectors import Row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.exceptions import BackendUnavailable
from taskyard.tasks.execution import Outcome, announce_outcome, execute
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.worker.control import DatabaseControl
from taskyard.worker.maintenance import Maintenance

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


class Worker:
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
        self._cond = threading.Condition()
        self._buffer: deque[Row] = deque()
        # every task taken from the buffer, from the moment it is taken (None until its
        # result is built) until its outcome is queued for recording
        self._running: dict[str, TaskResult[Any] | None] = {}
        self._finished: list[Finished] = []
        self._hint = False
        self._stop_claiming = threading.Event()
        self._cold = threading.Event()
        self._done = threading.Event()
        self._signals = 0
        self.started_count = 0
        self.processed = 0
        self.failed = 0
        self.succeeded = 0
        self.fenced = 0
        self.loop_seen = time.monotonic()
        self.db_ok_at = time.monotonic()
        self.state = "starting"
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

    def held_ids(self) -> list[str]:
        """Ids of every task this worker holds a lease on (running or claimed)."""
        with self._cond:
            return [*self._running, *(str(row["id"]) for row in self._buffer)]

    def running_results(self) -> list[TaskResult[Any]]:
        with self._cond:
            return [r for r in self._running.values() if r is not None]

    @property
    def stopping(self) -> bool:
        return self._stop_claiming.is_set()

    # -- the main loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return the exit status (0 clean, 1 tasks were abandoned)."""
        if self.config.handle_signals and threading.current_thread() is threading.main_thread():
            self._install_signals()
        logger.info(
            "worker %s starting: backend %s, queues %s, %d thread(s), batch %d, lease %ss",
            self.worker_id,
            self.backend.alias,
            ",".join(self.config.queues) if self.config.queues is not None else "*",
            self.config.threads,
            self.config.batch_size,
            self.config.lease,
        )
        threads = [
            threading.Thread(target=self._execute_loop, name=f"taskyard-exec-{i}", daemon=True)
            for i in range(self.config.threads)
        ]
        for thread in threads:
            thread.start()
        self._listener = threading.Thread(target=self._listen, name="taskyard-listen", daemon=True)
        self._listener.start()
        self.maintenance.start()
        self.state = "running"
        try:
            self._loop()
        finally:
            self._shutdown()
        return self.exit_code

    def _loop(self) -> None:
        config = self.config
        backoff = 0.0
        while not self._stop_claiming.is_set():
            self.loop_seen = time.monotonic()
            self._flush()
            if config.max_tasks is not None and self.started_count >= config.max_tasks:
                logger.info("worker %s reached --max-tasks %d", self.worker_id, config.max_tasks)
                self._stop_claiming.set()
                break
            claimed = -1
            with self._cond:
                room = len(self._buffer) < config.threads
            if room:
                try:
                    claimed = self._claim()
                    backoff = 0.0
                    self.db_ok_at = time.monotonic()
                except BackendUnavailable as exc:
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    logger.warning("claim failed (%s); retrying in %.1fs", exc, backoff)
                    self._wait(backoff)
                    continue
            if claimed > 0:
                continue
            if config.burst and claimed == 0 and self._idle():
                self._flush()
                if self._idle() and self._claim() == 0:
                    logger.info("worker %s: burst finished, nothing left to do", self.worker_id)
                    return
                continue
            self._wait(self._idle_timeout() if claimed == 0 else config.interval)

    def _claim(self) -> int:
        limit = self.config.batch_size
        if self.config.max_tasks is not None:
            limit = max(
                1, min(limit, self.config.max_tasks - self.started_count - len(self._buffer))
            )
        rows = self.ops.claim(
            self.worker_id,
            self.config.queues,
            limit,
            self.config.lease,
            self.config.qualifiers,
            self.config.exclude_queues,
        )
        if rows:
            with self._cond:
                self._buffer.extend(rows)
                self._cond.notify_all()
        return len(rows)

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

    # -- executing ---------------------------------------------------------------------------------

    def _execute_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._buffer and not self._done.is_set():
                        self._cond.wait()
                    if self._done.is_set() or self._cold.is_set():
                        return
                    row = self._buffer.popleft()
                    self._running[str(row["id"])] = None
                    self.started_count += 1
                self._run_one(row)
        finally:
            self.ops.c.thread_done()

    def _run_one(self, row: Row) -> None:
        claimed = open_claimed(row, self.backend, self.worker_id)
        task, result = claimed.task, claimed.result
        if claimed.failed is not None or task is None:
            self._record(result, claimed.failed or Outcome(TaskResultStatus.FAILED))
            return
        with self._cond:
            self._running[result.id] = result
        if self._on_start is not None:
            self._on_start(result, task.timeout)
        control = DatabaseControl(self.ops, self.worker_id, self.config.lease)
        outcome = execute(
            task,
            result,
            worker_id=self.worker_id,
            sender=type(self.backend),
            control=control,
            claimed=True,
        )
        if self._on_end is not None:
            self._on_end(result)
        self._record(result, outcome)

    def _record(self, result: TaskResult[Any], outcome: Outcome) -> None:
        with self._cond:
            self._running.pop(result.id, None)
            self._finished.append(Finished(result, outcome))
            self.processed += 1
            if outcome.status is TaskResultStatus.FAILED:
                self.failed += 1
            elif outcome.status is TaskResultStatus.SUCCESSFUL:
                self.succeeded += 1
            self._cond.notify_all()

    def _flush(self) -> None:
        """Write finished attempts (one statement) and announce them; keep them on failure."""
        with self._cond:
            if not self._finished:
                return
            batch, self._finished = self._finished, []
        try:
            written = self.ops.complete(self.worker_id, batch)
            self.db_ok_at = time.monotonic()
        except BackendUnavailable as exc:
            logger.warning("recording %d finished task(s) failed (%s); will retry", len(batch), exc)
            with self._cond:
                self._finished[:0] = batch
            time.sleep(0.5)
            return
        sender = type(self.backend)
        for item in batch:
            if item.result.id in written:
                announce_outcome(sender, item.result, item.outcome)
            else:
                self.fenced += 1
                logger.warning(
                    "task %s: attempt %d finished after this worker lost its lease; "
                    "its outcome (%s) was discarded",
                    item.result.id,
                    item.result.attempts,
                    item.outcome.status.value,
                )

    # -- stopping ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        def handler(signum: int, frame: object) -> None:
            self._signals += 1
            name = signal.Signals(signum).name
            if self._signals == 1:
                logger.warning(
                    "%s: warm shutdown (finishing running tasks; again to stop now)", name
                )
                self.stop()
            else:
                logger.warning("%s: cold shutdown", name)
                self.stop(cold=True)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _shutdown(self) -> None:
        self.state = "stopping"
        self._stop_claiming.set()
        with self._cond:
            unstarted = [str(row["id"]) for row in self._buffer]
            self._buffer.clear()
        self._retrying(lambda: self.ops.release_unstarted(self.worker_id, unstarted), "hand back")
        if unstarted:
            logger.info("handed back %d claimed task(s) that had not started", len(unstarted))
        deadline = time.monotonic() + self.config.shutdown_timeout
        while not self._cold.is_set() and time.monotonic() < deadline:
            self._flush()
            with self._cond:
                if not self._running:
                    break
                self._cond.wait(0.1)
        with self._cond:
            abandoned = list(self._running)
        if abandoned:
            reason = (
                f"worker {self.worker_id} shut down ("
                + (
                    "cold"
                    if self._cold.is_set()
                    else f"shutdown timeout {self.config.shutdown_timeout:g}s"
                )
                + ") while the attempt was running"
            )
            self._retrying(
                lambda: self.ops.abandon_running(self.worker_id, abandoned, reason), "abandon"
            )
            logger.warning(
                "gave up %d running task(s) for another worker: %s", len(abandoned), reason
            )
            self.exit_code = 1
        elif self._cold.is_set():
            self.exit_code = 1
        self._done.set()
        with self._cond:
            self._cond.notify_all()
        self._flush()
        self.maintenance.stop()
        self._listener.join(2.0)
        self.state = "stopped"
        logger.info(
            "worker %s stopped: %d processed (%d succeeded, %d failed)",
            self.worker_id,
            self.processed,
            self.succeeded,
            self.failed,
        )

    def _retrying(self, action: Callable[[], Any], what: str, attempts: int = 5) -> None:
        for attempt in range(attempts):
            try:
                action()
                return
            except BackendUnavailable as exc:
                logger.warning("%s failed (%s), attempt %d of %d", what, exc, attempt + 1, attempts)
                time.sleep(min(2.0, 0.2 * 2**attempt))
        logger.error("%s failed for good: leases will expire and the reaper will recover", what)
