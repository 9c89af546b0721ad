"""An event loop for async tasks: many coroutines at once, beside a worker's threads (used by
``taskyard worker`` and the ThreadPool backend).

``AsyncRunner`` owns one asyncio loop on its own thread. The worker's claim loop hands it rows
of async tasks (never more than ``concurrency`` in flight); each runs as an asyncio task through
``execute_async``, with the same lease, timeout, cancellation, retry and shutdown rules as a
sync task: the worker's maintenance thread renews leases, writes progress and delivers cancel
requests (the coroutine is cancelled at its next ``await``); the timeout cancels the coroutine
at its deadline; a stopping worker cancels what it hands back.

A coroutine that blocks the loop (``time.sleep``, sync I/O) stalls every other coroutine:
``check_blocked()``, called by the claim loop, notices when the loop has not ticked for
``BLOCKED_AFTER`` seconds, finds which task's code is running on the loop thread, and logs it
once per episode; ``lag`` and ``blocked_total`` feed the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from taskyard.tasks.execution import Outcome, execute, execute_async
from taskyard.tasks.results import Progress, TaskResult
from taskyard.tasks.task import Task

logger = logging.getLogger("taskyard.worker")

#: Seconds without a tick after which the loop counts as blocked.
BLOCKED_AFTER = 0.5
TICK = 0.05


class LoopControl:
    """``AttemptControl`` for async tasks on an event loop: nothing here may block the loop, so
    progress is kept for the owner's maintenance thread to store (``take_pending``), and leases
    and cancellation requests are its business too (a Database worker renews every running
    task's lease and cancels the coroutine of a task someone cancelled)."""

    __slots__ = ("_lock", "pending")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: dict[str, tuple[TaskResult[Any], Progress]] = {}

    def set_progress(self, result: TaskResult[Any], progress: Progress) -> None:
        with self._lock:
            self.pending[result.id] = (result, progress)

    def heartbeat(self, result: TaskResult[Any]) -> None:
        pass  # leases of running tasks are renewed by the owner's maintenance

    def is_cancelled(self, result: TaskResult[Any]) -> bool:
        return result._cancel_requested

    def take_pending(self) -> list[tuple[TaskResult[Any], Progress]]:
        with self._lock:
            items, self.pending = list(self.pending.values()), {}
        return items


Done = Callable[["TaskResult[Any]", Outcome | None, BaseException | None], None]


@dataclass(slots=True)
class Start:
    """One attempt handed to the loop."""

    task_id: str
    task: Task[Any, Any]
    result: TaskResult[Any]
    run: Callable[[], Coroutine[Any, Any, Outcome]]
    done: Done


class AsyncRunner:
    """Runs async tasks on one event loop thread (see the module docstring)."""

    def __init__(self, name: str = "taskyard-async") -> None:
        self.loop = asyncio.new_event_loop()
        self.control = LoopControl()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._ids: dict[asyncio.Task[Any], str] = {}  # -> "task ID (function)"
        self._ticked = time.monotonic()
        self._blocked_since: float | None = None
        self.lag = 0.0
        self.max_lag = 0.0
        self.blocked_total = 0

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def start(self) -> AsyncRunner:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        ticker = self.loop.create_task(self._tick())
        try:
            self.loop.run_forever()
        finally:
            ticker.cancel()
            self.loop.run_until_complete(asyncio.gather(ticker, return_exceptions=True))
            self.loop.close()

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.lag = max(0.0, now - before - TICK)
            self.max_lag = max(self.max_lag, self.lag)
            self._ticked = now

    # -- running ---------------------------------------------------------------------------

    def submit(self, starts: list[Start]) -> None:
        """Start attempts (one wake-up of the loop for a whole claim): each ``Start`` names the
        task, its result, the coroutine function running the attempt, and ``done(result,
        outcome, error)``, called on the loop thread when it ends (``outcome`` None: the worker
        gave it up)."""

        def spawn() -> None:
            for start in starts:
                atask = self.loop.create_task(
                    self._guarded(start.task_id, start.result, start.run, start.done)
                )
                self._tasks[start.task_id] = atask
                name = getattr(start.task.func, "__qualname__", start.task.module_path)
                self._ids[atask] = f"task {start.task_id} ({name})"

        self.loop.call_soon_threadsafe(spawn)

    async def _guarded(
        self,
        task_id: str,
        result: TaskResult[Any],
        run: Callable[[], Coroutine[Any, Any, Outcome]],
        done: Done,
    ) -> None:
        outcome: Outcome | None = None
        error: BaseException | None = None
        try:
            outcome = await run()
        except asyncio.CancelledError:
            outcome = None  # the worker gave the attempt up (stopping): nothing to record
        except BaseException as exc:  # never lose an outcome, whatever escaped
            error = exc
        finally:
            atask = self._tasks.pop(task_id, None)
            if atask is not None:
                self._ids.pop(atask, None)
            done(result, outcome, error)

    def run_sync(self, task: Task[Any, Any], result: TaskResult[Any], **kwargs: Any) -> Any:
        """A sync task that reached the loop (declared async when enqueued, sync now): run it
        on a thread of the loop's default executor."""
        return self.loop.run_in_executor(None, lambda: execute(task, result, **kwargs))

    def execute(self, task: Task[Any, Any], result: TaskResult[Any], **kwargs: Any) -> Any:
        """The coroutine running one attempt (``execute_async`` with this loop's control)."""
        if not task.is_async:
            return self.run_sync(task, result, control=self.control, **kwargs)
        return execute_async(task, result, control=self.control, **kwargs)

    def cancel(self, task_ids: list[str], stopping: bool) -> None:
        """Cancel these tasks' coroutines at their next ``await``: on request (``stopping``
        False: ``execute_async`` sees the request and ends them CANCELLED) or because the worker
        gives them up (``stopping`` True: nothing is recorded)."""

        def cancel_now() -> None:
            for task_id in task_ids:
                atask = self._tasks.get(task_id)
                if atask is not None:
                    atask.cancel()

        if not task_ids:
            return
        try:
            self.loop.call_soon_threadsafe(cancel_now)
        except RuntimeError:
            if not self.loop.is_closed():
                raise
            # stopped: every coroutine on it was cancelled then; nothing is left to cancel

    def in_flight(self) -> int:
        return len(self._tasks)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel whatever still runs, then stop the loop and its thread."""
        if not self._thread.is_alive():
            return

        async def finish() -> None:
            for atask in list(self._tasks.values()):
                atask.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks.values()), timeout=timeout)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(finish(), self.loop)
        self._thread.join(timeout + 1.0)

    # -- a blocked loop ----------------------------------------------------------------------

    def check_blocked(self) -> str | None:
        """Log (once per episode) and return which task blocks the loop, if one does."""
        stalled = time.monotonic() - self._ticked
        if stalled < BLOCKED_AFTER or not self._tasks:
            self._blocked_since = None
            return None
        if self._blocked_since is not None:
            return None  # already reported
        self._blocked_since = time.monotonic()
        self.blocked_total += 1
        culprit = self._running_task()
        logger.warning(
            "the event loop has been blocked for %.1fs by %s: an async task called something "
            "that blocks (time.sleep, sync I/O, CPU work); every other async task waits "
            "meanwhile. Await a non-blocking call, or make it a sync task",
            stalled,
            culprit or "an async task",
        )
        return culprit

    def _running_task(self) -> str | None:
        """The task whose coroutine holds the loop (read from another thread: best effort)."""
        atask = asyncio.current_task(self.loop)
        return self._ids.get(atask) if atask is not None else None
