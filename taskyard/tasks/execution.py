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
import random
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import TaskCancelled, TaskTimeout, WorkerInterrupted, WorkerLost
from taskyard.tasks.context import IN_MEMORY, AttemptControl, TaskContext
from taskyard.tasks.deadlines import DEADLINES
from taskyard.tasks.hooks import (
    announce_finished,
    announce_retry,
    announce_started,
    awrapped_run,
    wrapped_run,
)
from taskyard.tasks.limits import storable_text
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
    # An exception's message is whatever the task put in it (bytes decoded with NUL
    # characters, a lone surrogate from surrogateescape): recorded with those escaped, since
    # PostgreSQL refuses them and one unstorable error failed every completion of its batch.
    return TaskError(
        exception_class_path=storable_text(f"{kind.__module__}.{kind.__qualname__}"),
        traceback=storable_text("".join(traceback.format_exception(exc))),
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


def _start(
    task: Task[Any, Any],
    result: TaskResult[Any],
    worker_id: str,
    sender: type,
    control: AttemptControl,
    claimed: bool,
) -> list[Any]:
    """Begin (or, ``claimed``, announce) the attempt; return the arguments to call with."""
    if claimed:
        announce_started(sender, result)
    else:
        begin_attempt(result, worker_id, sender)
    if task.takes_context:
        return [TaskContext(result, control), *result._args]
    return result._args


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
    is left to do. The run wrappers of ``taskyard.tasks.hooks`` bracket the attempt.
    """
    with wrapped_run(result):
        return _attempt(task, result, worker_id, sender, control, claimed)


def _attempt(
    task: Task[Any, Any],
    result: TaskResult[Any],
    worker_id: str,
    sender: type,
    control: AttemptControl,
    claimed: bool,
) -> Outcome:
    args = _start(task, result, worker_id, sender, control, claimed)
    try:
        value = invoke(task.func, args, result._kwargs, task.timeout, task.is_async)
        value = normalize_return_value(value, task.module_path)
    except WorkerInterrupted:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is (
            threading.main_thread()
        ):
            raise  # Ctrl-C in an inline run; in a worker thread it is the task's own doing
        return record_failure(task, result, exc, cancel_requested=control.is_cancelled(result))
    result._return_value = value
    result._status = SUCCESSFUL
    result._finished_at = utcnow()
    return Outcome(SUCCESSFUL)


async def execute_async(
    task: Task[Any, Any],
    result: TaskResult[Any],
    *,
    worker_id: str,
    sender: type,
    control: AttemptControl = IN_MEMORY,
    claimed: bool = False,
) -> Outcome:
    """``execute()`` for an ``async def`` task on the caller's event loop (a worker's loop).

    The timeout cancels the coroutine at its deadline (``TaskTimeout``). Cancelling the asyncio
    task ends the attempt as CANCELLED when a cancellation was requested for the result
    (``control.is_cancelled``, which must not block); any other cancellation (the worker
    stopping) propagates as ``asyncio.CancelledError`` and records nothing. ``control`` is
    called on the loop: it must not block either.
    """
    async with awrapped_run(result):
        args = _start(task, result, worker_id, sender, control, claimed)
        try:
            value = await _run_async(task.func, args, result._kwargs, task.timeout)
            value = normalize_return_value(value, task.module_path)
        except asyncio.CancelledError as exc:
            if not control.is_cancelled(result):
                raise
            cancelled = TaskCancelled("cancelled on request at an await")
            cancelled.__traceback__ = exc.__traceback__
            return record_failure(task, result, cancelled)
        except WorkerInterrupted:
            raise
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
    # Attempts interrupted by a worker's death or shutdown do not use up retries: the store's
    # own budget when it keeps one (a Database row), else attempts minus interruptions (each
    # recorded as a WorkerLost error); a lost attempt recorded through here is charged.
    budget = result._retries_left
    if budget is not None:
        can_retry = budget > 0
    else:
        charged = result.attempts - (0 if isinstance(exc, WorkerLost) else interruptions(result))
        can_retry = charged <= task.retries
    if can_retry and isinstance(exc, task.retry_on):
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
        announce_finished(sender, result, outcome.exception)


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
    """Raises ``TaskTimeout`` in threads whose deadline passed (on the shared timer thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fired: dict[int, int] = {}
        self._disarmed: set[int] = set()

    def arm(self, thread_id: int, seconds: float) -> int:
        cell: list[int] = []
        token = DEADLINES.schedule(seconds, lambda: self._fire(cell[0], thread_id))
        cell.append(token)
        return token

    def _fire(self, token: int, thread_id: int) -> None:
        with self._lock:
            if token in self._disarmed:
                self._disarmed.discard(token)
                return
            self._fired[token] = thread_id
            _set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeout))

    def disarm(self, token: int) -> bool:
        """Stop watching; if the deadline already fired, clear a not-yet-delivered exception."""
        with self._lock:
            if DEADLINES.cancel(token):
                return False
            thread_id = self._fired.pop(token, None)
            if thread_id is None:
                self._disarmed.add(token)  # due, its action not run yet: make it a no-op
                return False
            _set_async_exc(ctypes.c_ulong(thread_id), None)
            return True


WATCHDOG = _Watchdog()
