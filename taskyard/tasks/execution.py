"""Running one attempt of a task: the execution semantics every executing backend shares.

``execute()`` runs an attempt against a ``TaskResult`` (mutating it: RUNNING, worker id,
timestamps, return value or error) and returns an ``Outcome`` that says what happens next:
SUCCESSFUL, FAILED, CANCELLED, or READY again at ``retry_at`` (a retry with exponential
backoff and jitter). The backend persists the outcome and then calls ``announce_outcome()``,
which writes the lifecycle log line and fires the ``task_finished`` hook.

Timeouts are enforced here too:

* async tasks are cancelled at their next ``await`` (``asyncio.timeout``);
* sync tasks on the main thread get ``SIGALRM`` (which also interrupts ``time.sleep`` and
  blocking I/O), when the signal is free;
* sync tasks on other threads get ``TaskTimeout`` raised asynchronously in their thread by a
  watchdog. That takes effect at the next Python bytecode: a thread blocked inside one long C
  call stops when the call returns. The attempt's outcome is produced only once the function
  has really stopped, so a timed-out task is never retried while it is still executing. Process
  workers (``taskyard worker --processes``) kill the child instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import TaskCancelled, TaskTimeout, WorkerInterrupted, WorkerLost
from taskyard.tasks.context import IN_MEMORY, AttemptControl, TaskContext
from taskyard.tasks.hooks import announce_finished, announce_retry, announce_started
from taskyard.tasks.results import TaskError, TaskResultStatus
from taskyard.tasks.serialization import normalize_return_value
from taskyard.tasks.task import run_coroutine

if TYPE_CHECKING:
    from taskyard.tasks.results import TaskResult
    from taskyard.tasks.task import Task

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED
CANCELLED = TaskResultStatus.CANCELLED


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Outcome:
    """What an attempt ended in. ``status`` is READY when a retry is due at ``retry_at``."""

    status: TaskResultStatus
    retry_at: datetime | None = None
    retry_delay: float = 0.0
    exception: BaseException | None = None

    @property
    def will_retry(self) -> bool:
        return self.status is READY


def backoff_delay(task: Task[Any, Any], attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, with jitter.

    ``retry_backoff * 2 ** (attempt - 1)``, capped at ``retry_backoff_max``, then scaled by a
    random factor in [0.5, 1.0] so that many failing tasks do not retry in lockstep.
    """
    base = float(task.retry_backoff)
    if base <= 0:
        return 0.0
    delay: float = min(float(task.retry_backoff_max), base * (2.0 ** min(attempt - 1, 62)))
    return delay * random.uniform(0.5, 1.0)


def error_from_exception(exc: BaseException) -> TaskError:
    kind = type(exc)
    return TaskError(
        exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
    )


def begin_attempt(result: TaskResult[Any], worker_id: str, sender: type) -> None:
    """Mark the result RUNNING for a new attempt by ``worker_id`` and announce it."""
    now = utcnow()
    result._status = RUNNING
    if result._started_at is None:
        result._started_at = now
    result._last_attempted_at = now
    result._worker_ids.append(worker_id)
    announce_started(sender, result)


def execute(
    task: Task[Any, Any],
    result: TaskResult[Any],
    *,
    worker_id: str,
    sender: type,
    control: AttemptControl = IN_MEMORY,
    claimed: bool = False,
) -> Outcome:
    """Run one attempt of ``result``'s task and record the outcome on ``result``.

    ``claimed=True`` means the store already marked the attempt started (status RUNNING,
    attempt counted, worker id appended) when the worker claimed it: only the announcement
    is left to do.
    """
    if claimed:
        announce_started(sender, result)
    else:
        begin_attempt(result, worker_id, sender)
    args: list[Any] = result._args
    if task.takes_context:
        args = [TaskContext(result, control), *args]
    try:
        value = invoke(task.func, args, result._kwargs, task.timeout, task.is_async)
        value = normalize_return_value(value, task.module_path)
    except (KeyboardInterrupt, WorkerInterrupted):
        raise  # the worker is stopping: the attempt is interrupted, not failed
    except BaseException as exc:
        return record_failure(task, result, exc, cancel_requested=control.is_cancelled(result))
    result._return_value = value
    result._status = SUCCESSFUL
    result._finished_at = utcnow()
    return Outcome(SUCCESSFUL)


def record_failure(
    task: Task[Any, Any],
    result: TaskResult[Any],
    exc: BaseException,
    *,
    cancel_requested: bool = False,
) -> Outcome:
    """Record ``exc`` as the error of the current attempt and decide what happens next."""
    result._errors.append(error_from_exception(exc))
    if isinstance(exc, TaskCancelled) or cancel_requested:
        result._status = CANCELLED
        result._finished_at = utcnow()
        return Outcome(CANCELLED, exception=exc)
    # Attempts interrupted by a worker's death or shutdown do not use up retries; a backend that
    # still records a lost attempt through here (as a WorkerLost failure) charges it as before.
    charged = result.attempts - (0 if isinstance(exc, WorkerLost) else interruptions(result))
    if charged <= task.retries and isinstance(exc, task.retry_on):
        delay = backoff_delay(task, result.attempts)
        result._status = READY
        return Outcome(READY, utcnow() + timedelta(seconds=delay), delay, exc)
    result._status = FAILED
    result._finished_at = utcnow()
    return Outcome(FAILED, exception=exc)


INTERRUPTED_ERRORS = frozenset(
    {"taskyard.exceptions.WorkerLost", "taskyard.backends.redis.record.WorkerLost"}
)
"""Error class paths that record an *interrupted* attempt (its worker died or was shut down)."""


def interruptions(result: TaskResult[Any]) -> int:
    """How many attempts of ``result`` were interrupted by their worker's death or shutdown.

    Each is recorded as a ``WorkerLost`` error. Interrupted attempts count as attempts (they
    began) but not against ``retries``: only failures use up retries.
    """
    return sum(1 for e in result._errors if e.exception_class_path in INTERRUPTED_ERRORS)


def fail_without_running(result: TaskResult[Any], exc: BaseException) -> None:
    """Mark a result FAILED for a reason found before it could run (no such task, bad data)."""
    result._errors.append(error_from_exception(exc))
    result._status = FAILED
    result._finished_at = utcnow()


def announce_outcome(sender: type, result: TaskResult[Any], outcome: Outcome) -> None:
    """Log the transition and fire ``task_finished`` (once the backend has stored it)."""
    if outcome.status is READY:
        announce_retry(result, outcome.retry_delay)
    else:
        announce_finished(sender, result)


# -- invoking with a timeout ------------------------------------------------------------------


def invoke(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    is_async: bool,
) -> Any:
    """Call ``func`` (sync or async), raising ``TaskTimeout`` if it runs past ``timeout``."""
    if is_async:
        return run_coroutine(_run_async(func, args, kwargs, timeout))
    if timeout is None:
        return func(*args, **kwargs)
    if _can_use_alarm():
        return _call_with_alarm(func, args, kwargs, timeout)
    return _call_with_watchdog(func, args, kwargs, timeout)


def _timeout_error(timeout: float) -> TaskTimeout:
    return TaskTimeout(f"task ran longer than its timeout of {timeout:g}s and was stopped")


async def _run_async(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    if timeout is None:
        return await func(*args, **kwargs)
    try:
        async with asyncio.timeout(timeout) as scope:
            return await func(*args, **kwargs)
    except TimeoutError as exc:
        if scope.expired():
            raise _timeout_error(timeout).with_traceback(exc.__traceback__) from None
        raise


def _can_use_alarm() -> bool:
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )


def _call_with_alarm(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float
) -> Any:
    def on_alarm(signum: int, frame: object) -> None:
        raise _timeout_error(timeout)

    signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return func(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _call_with_watchdog(
    func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout: float
) -> Any:
    token = WATCHDOG.arm(threading.get_ident(), timeout)
    try:
        try:
            return func(*args, **kwargs)
        finally:
            WATCHDOG.disarm(token)
    except TaskTimeout as exc:
        if exc.args:
            raise
        raise _timeout_error(timeout).with_traceback(exc.__traceback__) from None


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


class _Watchdog:
    """One background thread that raises ``TaskTimeout`` in threads whose deadline passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, int] = {}
        self._fired: dict[int, int] = {}
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, thread_id: int, seconds: float) -> int:
        with self._cond:
            token = next(self._counter)
            self._armed[token] = thread_id
            heapq.heappush(self._heap, (time.monotonic() + seconds, token))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskyard-timeout-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Stop watching; if the deadline already fired, clear a not-yet-delivered exception."""
        with self._cond:
            if self._armed.pop(token, None) is not None:
                return False
            thread_id = self._fired.pop(token, None)
            if thread_id is not None:
                _set_async_exc(ctypes.c_ulong(thread_id), None)
                return True
            return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                thread_id = self._armed.pop(token, None)
                if thread_id is not None:
                    self._fired[token] = thread_id
                    _set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeout))


WATCHDOG = _Watchdog()
