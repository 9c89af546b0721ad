"""Stopping a ``Worker``: signals, warm and cold shutdown, handing work back, and replacing the
process when a timed-out task cannot be stopped; also recovering after an earlier process.

Every running attempt a stopping worker gives up is handed back as interrupted (run again
whatever ``retries`` says, up to ``MAX_INTERRUPTIONS``); claimed attempts that had not started go
back uncounted. See ``docs/workers.md``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskyard.backends.database.connectors import Row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.exceptions import BackendUnavailable, TaskTimeout, WorkerInterrupted
from taskyard.tasks.execution import announce_outcome, record_failure
from taskyard.tasks.results import TaskResult
from taskyard.tasks.task import Task
from taskyard.worker.signals import install_stop_signals

if TYPE_CHECKING:
    from taskyard.backends.database.backend import DatabaseBackend
    from taskyard.tasks.loop import AsyncRunner
    from taskyard.worker.maintenance import Maintenance
    from taskyard.worker.worker import WorkerConfig

logger = logging.getLogger("taskyard.worker")

#: Exit status of a worker that must be started again (a task could not be stopped).
EXIT_REPLACE = 75
#: Exit status of a worker that lost its executor threads.
EXIT_BROKEN = 70
#: Seconds past a task's timeout after which a thread that did not stop counts as stuck.
STUCK_GRACE = 2.0


@dataclass(slots=True)
class Running:
    """A task an executor took from the buffer, until its outcome is queued for recording."""

    thread: int
    result: TaskResult[Any] | None = None
    task: Task[Any, Any] | None = None
    #: monotonic time past which the attempt counts as stuck (timeout + STUCK_GRACE)
    stuck_after: float | None = None
    #: the worker gave this attempt up: its outcome, if it ever comes, is not recorded
    given_up: bool = False
    #: an async task running as a coroutine on the worker's event loop
    on_loop: bool = False


class Stopping:
    """The stopping half of ``Worker`` (a mixin: it uses the worker's state)."""

    backend: DatabaseBackend
    config: WorkerConfig
    ops: QueueOps
    worker_id: str
    maintenance: Maintenance
    state: str
    exit_code: int
    problem: str | None
    processed: int
    succeeded: int
    failed: int
    _cond: threading.Condition
    _work: threading.Condition
    _buffer: deque[Row]
    _running: dict[str, Running]
    _stop_claiming: threading.Event
    _cold: threading.Event
    _done: threading.Event
    _interrupt_main: bool
    _stuck: list[Running]
    _listener: threading.Thread
    runner: AsyncRunner | None

    def stop(self, cold: bool = False) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _recover_previous_run(self) -> None:
        """Tasks still held under this worker's id belong to an earlier process with the same
        id (``--worker-id`` set, and the process killed): their attempts were interrupted.
        (Workers never reap their own leases, so nobody else would.)"""
        try:
            held = self.ops.held_by(self.worker_id)
            if held:
                self.ops.abandon_running(
                    self.worker_id,
                    held,
                    f"an earlier process with worker id {self.worker_id} ended while running it",
                )
                logger.warning(
                    "worker %s: %d task(s) of an earlier process with this id handed back",
                    self.worker_id,
                    len(held),
                )
        except BackendUnavailable as exc:
            logger.warning("could not check for tasks of an earlier process: %s", exc)

    # -- overruns and broken executors ------------------------------------------------------

    def _check_overruns(self) -> bool:
        """True when a timed-out task could not be stopped: the process must be replaced."""
        now = time.monotonic()
        with self._cond:
            stuck = [
                r
                for r in self._running.values()
                if r.stuck_after is not None and now > r.stuck_after and not r.given_up
            ]
            for entry in stuck:
                entry.given_up = True
        if not stuck:
            return False
        for entry in stuck:
            assert entry.result is not None and entry.task is not None
            logger.error(
                "task %s ran past its timeout of %gs and could not be interrupted (blocked in a "
                "call Python cannot interrupt): replacing this worker process",
                entry.result.id,
                entry.task.timeout,
            )
        self._stuck = stuck
        self._stop_claiming.set()
        return True

    def _check_executors(self) -> bool:
        """True when executor threads died: stop, and exit for the supervisor to restart."""
        if self.problem is None:
            return False
        logger.critical(
            "worker %s cannot execute tasks (%s): stopping", self.worker_id, self.problem
        )
        self._stop_claiming.set()
        return True

    # -- stopping ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        def interrupt_main() -> None:
            if self._interrupt_main:
                self._interrupt_main = False
                raise WorkerInterrupted("the worker is stopping now")

        def interrupt_inline_task() -> None:
            if self.config.inline and threading.current_thread() is threading.main_thread():
                with self._cond:
                    busy = any(r.thread == threading.get_ident() for r in self._running.values())
                if busy:
                    raise WorkerInterrupted("cold shutdown")

        install_stop_signals(
            lambda cold: self.stop(cold=cold),
            before=interrupt_main,
            after_cold=interrupt_inline_task,
        )

    def _shutdown(self) -> None:
        self.state = "stopping"
        self._stop_claiming.set()
        replacing = bool(self._stuck)
        with self._cond:
            unstarted = [str(row["id"]) for row in self._buffer]
            self._buffer.clear()
        self._retrying(lambda: self.ops.release_unstarted(self.worker_id, unstarted), "hand back")
        if unstarted:
            logger.info("handed back %d claimed task(s) that had not started", len(unstarted))
        wait = min(STUCK_GRACE, self.config.shutdown_timeout) if replacing else None
        self._wait_for_running(self.config.shutdown_timeout if wait is None else wait)
        with self._cond:
            abandoned = [i for i, r in self._running.items() if not r.given_up]
            for task_id in abandoned:
                self._running[task_id].given_up = True
        if abandoned:
            self._abandon(abandoned, replacing)
        elif self._cold.is_set():
            self.exit_code = 1
        self._record_stuck()
        self._done.set()
        with self._cond:
            self._cond.notify_all()
            self._work.notify_all()
        self._flush()
        if self.runner is not None:
            self.runner.stop()
        self.maintenance.stop()
        self._listener.join(2.0)
        self.ops.c.thread_done()  # this thread's connection (a worker run in a thread of yours)
        self.state = "stopped"
        logger.info(
            "worker %s stopped: %d processed (%d succeeded, %d failed)",
            self.worker_id,
            self.processed,
            self.succeeded,
            self.failed,
        )
        if replacing:
            self.exit_code = EXIT_REPLACE
            replace_process(self.config.on_stuck)
        elif self.problem is not None:
            self.exit_code = EXIT_BROKEN

    def _wait_for_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._cold.is_set() and time.monotonic() < deadline:
            self._flush()
            with self._cond:
                if not any(not r.given_up for r in self._running.values()):
                    break
                self._cond.wait(0.1)

    def _abandon(self, ids: list[str], replacing: bool) -> None:
        """Hand running attempts back as interrupted, and stop the main thread's task."""
        if replacing:
            reason = (
                f"worker {self.worker_id} was replaced because another task could not be stopped "
                "at its timeout"
            )
        else:
            how = "cold" if self._cold.is_set() else f"timeout {self.config.shutdown_timeout:g}s"
            reason = f"worker {self.worker_id} shut down ({how}) while the attempt was running"
        self._retrying(
            lambda: self.ops.abandon_running(self.worker_id, ids, reason, charge=not replacing),
            "hand back running tasks",
        )
        logger.warning("gave up %d running task(s) for another worker: %s", len(ids), reason)
        self.exit_code = 1
        if self.runner is not None:
            with self._cond:
                on_loop = [i for i in ids if i in self._running and self._running[i].on_loop]
            self.runner.cancel(on_loop, stopping=True)
        self._interrupt_inline_task()

    def _interrupt_inline_task(self) -> None:
        """In inline mode the main thread runs the task: interrupt it (through the signal
        handler, which raises ``WorkerInterrupted`` there) so ``run()`` can return."""
        main = threading.main_thread()
        if not (self.config.inline and self.config.handle_signals) or main.ident is None:
            return
        if threading.current_thread() is main:
            return
        self._interrupt_main = True
        signal.pthread_kill(main.ident, signal.SIGTERM)

    def _record_stuck(self) -> None:
        """Record ``TaskTimeout`` for attempts that could not be stopped (last, right before
        the process goes: a retry must not start while the old run still executes)."""
        finished = []
        for entry in self._stuck:
            assert entry.result is not None and entry.task is not None
            copy: TaskResult[Any] = TaskResult(
                task=entry.task,
                id=entry.result.id,
                status=entry.result.status,
                args=entry.result.args,
                kwargs=entry.result.kwargs,
                backend=entry.result.backend,
                backend_obj=self.backend,
            )
            copy._copy_from(entry.result)
            copy._errors = list(entry.result.errors)
            error = TaskTimeout(
                f"task ran longer than its timeout of {entry.task.timeout:g}s and could not be "
                f"interrupted: worker {self.worker_id} replaced its process to stop it"
            )
            finished.append(Finished(copy, record_failure(entry.task, copy, error)))
        if finished:
            self._retrying(lambda: self.ops.complete(self.worker_id, finished), "record timeout")
            for item in finished:
                announce_outcome(type(self.backend), item.result, item.outcome)

    def _retrying(self, action: Callable[[], Any], what: str, attempts: int = 5) -> None:
        for attempt in range(attempts):
            try:
                action()
                return
            except BackendUnavailable as exc:
                logger.warning("%s failed (%s), attempt %d of %d", what, exc, attempt + 1, attempts)
                time.sleep(min(2.0, 0.2 * 2**attempt))
        logger.error("%s failed for good: leases will expire and the reaper will recover", what)


def replace_process(how: str) -> None:
    """Replace this worker process: ``"exec"`` runs the same command line again in its place,
    ``"exit"`` ends it with ``EXIT_REPLACE`` for its supervisor; ``"return"`` does nothing."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    if how == "exec":
        argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        logger.warning("re-executing: %s", " ".join(argv))
        os.execv(sys.executable, [sys.executable, *argv[1:]])
    elif how == "exit":
        os._exit(EXIT_REPLACE)
