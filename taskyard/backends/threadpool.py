"""``ThreadPoolBackend``: runs tasks on a bounded pool of threads in this process.

Nothing survives the process: tasks still waiting when the interpreter exits are lost, and the
backend says so in a warning that counts them. Use the Database or Redis backend for work that
must not be lost.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.base import Option, not_negative, positive
from taskyard.backends.memory import MAX_RESULTS, InMemoryBackend
from taskyard.exceptions import TaskCancelled
from taskyard.tasks.execution import Outcome, announce_outcome, execute, record_failure
from taskyard.tasks.hooks import announce_finished
from taskyard.tasks.loop import AsyncRunner, Start
from taskyard.tasks.results import TaskResult, TaskResultStatus, process_identity
from taskyard.tasks.task import Task

logger = logging.getLogger("taskyard.backends.threadpool")

READY = TaskResultStatus.READY


class ThreadPoolBackend(InMemoryBackend):
    """Run tasks on up to ``MAX_WORKERS`` threads, higher priority first.

    Honours ``run_after``, retries with backoff, timeouts (see ``taskyard.tasks.execution``
    for what a thread timeout can and cannot interrupt), ``depends_on``, ``limit`` and
    cancellation. Results are readable in this process. ``close(wait=...)`` drains or drops
    the queue; at interpreter exit pending tasks are counted in a warning and dropped, and
    running ones get ``SHUTDOWN_TIMEOUT`` seconds to finish.
    """

    supports_defer = True
    supports_priority = True
    supports_async_task = True
    supports_retries = True
    supports_timeout = True

    options_schema = {
        "MAX_WORKERS": Option(int, 10, "number of worker threads", positive),
        "MAX_RESULTS": MAX_RESULTS,
        "SHUTDOWN_TIMEOUT": Option(
            float, 5.0, "seconds running tasks get to finish at interpreter exit", not_negative
        ),
        "ASYNC_CONCURRENCY": Option(
            int,
            500,
            "async tasks run at once as coroutines on the pool's event loop (0: each on a "
            "worker thread with an event loop of its own)",
            not_negative,
        ),
    }

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self._cond = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._ready: list[tuple[int, int, TaskResult[Any]]] = []
        self._deferred: list[tuple[float, int, TaskResult[Any]]] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._done_waiters = 0
        self._running: set[TaskResult[Any]] = set()
        self._stopping = False
        self._atexit_registered = False
        self._max_workers: int = self.options["MAX_WORKERS"]
        self._worker_id = f"{process_identity()}:threadpool:{alias}"
        self._runner: AsyncRunner | None = None
        self._loop_slots = threading.BoundedSemaphore(max(1, self.options["ASYNC_CONCURRENCY"]))

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        result, waiting = self._accept(task, args, kwargs)
        if result.is_finished:
            return result
        if waiting is None:
            with self._lock:
                if result.status is READY:
                    self._schedule(result, task.run_after)
                    self._ensure_threads()
        return result

    async def aenqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        return self.enqueue(task, args, kwargs)  # never blocks on I/O

    def _schedule(self, result: TaskResult[Any], when: datetime | None) -> None:
        """Queue a READY result now or at ``when``. Lock held."""
        if when is not None and when.timestamp() > time.time():
            heapq.heappush(self._deferred, (when.timestamp(), next(self._seq), result))
            self._cond.notify()
        else:
            heapq.heappush(self._ready, (-result.task.priority, next(self._seq), result))
            if self._idle:
                self._cond.notify()

    def _ensure_threads(self) -> None:
        """Start another worker thread if none is idle and the pool is not full. Lock held."""
        self._stopping = False
        if self._idle == 0 and len(self._threads) < self._max_workers:
            thread = threading.Thread(
                target=self._work,
                name=f"taskyard-{self.alias}-{len(self._threads) + 1}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
            if not self._atexit_registered:
                self._atexit_registered = True
                ref = weakref.ref(self)
                atexit.register(_at_exit, ref)

    # -- the worker threads --------------------------------------------------------------------

    def _next(self) -> TaskResult[Any] | None:
        """Wait for the next runnable result; None when the pool is stopping. Lock held."""
        ready, deferred = self._ready, self._deferred
        while not self._stopping:
            if deferred:
                now = time.time()
                while deferred and deferred[0][0] <= now:
                    _, seq, due = heapq.heappop(deferred)
                    heapq.heappush(ready, (-due.task.priority, seq, due))
            while ready:
                result = heapq.heappop(ready)[2]
                if result.status is READY:
                    self._running.add(result)
                    return result
            self._idle += 1
            self._cond.wait(deferred[0][0] - time.time() if deferred else None)
            self._idle -= 1
        return None

    def _work(self) -> None:
        sender = type(self)
        lock = self._lock
        while True:
            with lock:
                result = self._next()
                if result is None:
                    self._threads.remove(threading.current_thread())
                    return
            if result.task.is_async and self.options["ASYNC_CONCURRENCY"] > 0:
                self._start_on_loop(result)
                continue
            outcome = execute(result.task, result, worker_id=self._worker_id, sender=sender)
            self._after(result, outcome)

    def _start_on_loop(self, result: TaskResult[Any]) -> None:
        """Run an async task as a coroutine on the pool's event loop; the thread moves on
        (it waits only while ``ASYNC_CONCURRENCY`` coroutines are already in flight)."""
        self._loop_slots.acquire()
        with self._lock:
            if self._runner is None:
                self._runner = AsyncRunner(name=f"taskyard-{self.alias}-async").start()
            runner = self._runner
        sender = type(self)

        def done(
            finished: TaskResult[Any], outcome: Outcome | None, error: BaseException | None
        ) -> None:
            self._loop_slots.release()
            if outcome is None:
                outcome = record_failure(
                    finished.task, finished, error or TaskCancelled("the pool was closed")
                )
            self._after(finished, outcome)

        runner.submit(
            [
                Start(
                    result.id,
                    result.task,
                    result,
                    lambda: runner.execute(
                        result.task, result, worker_id=self._worker_id, sender=sender
                    ),
                    done,
                )
            ]
        )

    def _after(self, result: TaskResult[Any], outcome: Outcome) -> None:
        """Store an attempt's outcome: retry, or finish and release or cancel dependents."""
        sender = type(self)
        lock = self._lock
        cascade: list[TaskResult[Any]] = []
        with lock:
            self._running.discard(result)
            if outcome.will_retry:
                self._schedule(result, outcome.retry_at)
            else:
                self._finish(result)
                runnable, cascade = self._dependency_done(result)
                for freed in runnable:
                    self._schedule(freed, freed.task.run_after)
                if runnable:
                    self._ensure_threads()
        announce_outcome(sender, result, outcome)
        for cancelled in cascade:
            announce_finished(sender, cancelled)
        # Wake waiters only after the hooks ran; a waiter registered before the status
        # changed is already counted (both happen under the lock).
        if not outcome.will_retry and (self._done_waiters or not self._unfinished):
            with lock:
                self._done.notify_all()
                if not self._unfinished:
                    self._drained.notify_all()

    # -- results, cancel, close --------------------------------------------------------------

    def wait_for(self, result: TaskResult[Any], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            stored = self._results.get(result.id, result)
            self._done_waiters += 1
            try:
                while not stored.is_finished:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(
                            f"task {result.id} had not finished after {timeout}s "
                            f"(status {stored.status.value})"
                        )
                    self._done.wait(left)
            finally:
                self._done_waiters -= 1
        if stored is not result:
            result._copy_from(stored)

    def cancel(self, result: TaskResult[Any]) -> bool:
        with self._lock:
            stored = self.get_result(result.id)
            if stored.is_finished:
                return False
            if stored.status is not READY:
                stored._cancel_requested = True
                if self._runner is not None:  # an async task: cancelled at its next await
                    self._runner.cancel([stored.id], stopping=False)
                return True
            cancelled = self._cancel_ready(stored, "cancelled before it started")
        for item in cancelled:
            announce_finished(type(self), item)
        if stored is not result:
            result._copy_from(stored)
        return True

    def _cancel_ready(self, result: TaskResult[Any], reason: str) -> list[TaskResult[Any]]:
        """Cancel a READY result (it stays in the heaps and is skipped). Lock held."""
        record_failure(result.task, result, TaskCancelled(reason), cancel_requested=True)
        self._finish(result)
        cascade = self._dependency_done(result)[1]
        self._done.notify_all()
        if not self._unfinished:
            self._drained.notify_all()
        return [result, *cascade]

    def close(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop the pool.

        ``wait=True`` lets every pending task (including deferred ones) run first, up to
        ``timeout`` seconds; ``wait=False`` cancels pending tasks now. Running tasks always
        finish (threads cannot be killed); the call returns once they have or ``timeout``
        passed. Enqueueing again later starts new threads.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cancelled: list[TaskResult[Any]] = []
        with self._lock:
            while wait and self._unfinished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._drained.wait(left)
            for result in [r for r in self._results.values() if r.status is READY]:
                if result.status is READY:  # not already cancelled with its dependency
                    cancelled.extend(self._cancel_ready(result, "backend closed before it started"))
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        for item in cancelled:
            announce_finished(type(self), item)
        if cancelled:
            logger.warning(
                "ThreadPoolBackend %r closed: %d pending task(s) cancelled",
                self.alias,
                len(cancelled),
            )
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            left = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
            runner.stop(left)

    def _at_exit(self) -> None:
        with self._lock:
            pending = [r for r in self._results.values() if r.status is READY]
            self._stopping = True
            self._cond.notify_all()
            running = list(self._running)
        if pending:
            logger.warning(
                "ThreadPoolBackend %r: interpreter exiting with %d pending task(s) that will "
                "never run (first: %s). Use the Database or Redis backend for durable tasks.",
                self.alias,
                len(pending),
                ", ".join(f"{r.task.module_path}[{r.id}]" for r in pending[:5]),
            )
        if running:
            deadline = time.monotonic() + float(self.options["SHUTDOWN_TIMEOUT"])
            with self._lock:
                while self._running and time.monotonic() < deadline:
                    self._done_waiters += 1
                    self._done.wait(max(0.0, deadline - time.monotonic()))
                    self._done_waiters -= 1
                left = len(self._running)
            if left:
                logger.warning(
                    "ThreadPoolBackend %r: %d running task(s) abandoned at interpreter exit",
                    self.alias,
                    left,
                )


def _at_exit(ref: weakref.ReferenceType[ThreadPoolBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend._at_exit()
