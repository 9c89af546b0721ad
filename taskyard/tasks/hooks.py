"""Lifecycle hooks (enqueued, started, finished), the lifecycle log and run wrappers.

Every backend reports transitions through the ``announce_*`` functions below, which write one
log line per transition (logger ``taskyard.tasks``) and call the receivers connected to the
matching hook. Receivers are called as ``receiver(sender=<backend class>, task_result=...)``,
the same shape as Django's task signals. A receiver that raises is logged and skipped: hooks
never change a task's outcome. ``task_finished`` receivers of a FAILED task run while its
exception is being handled, so ``sys.exc_info()`` (and ``logger.exception``) sees it, as with
Django's own signal.

Run wrappers (``add_run_wrapper``) bracket every attempt an executor runs on a thread it owns
(worker threads, ThreadPool threads, rq jobs): an integration uses them for per-run
housekeeping, such as Django's connection handling. Attempts run inline on the caller's thread
(the Immediate backend, test helpers that drain a queue in place) are marked with
``running_inline()`` and are not wrapped: the caller's resources are not the executor's to
touch.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING, Any

from taskyard.tasks.results import TaskResultStatus

if TYPE_CHECKING:
    from taskyard.tasks.results import TaskResult

logger = logging.getLogger("taskyard.tasks")

Receiver = Callable[..., Any]


class Hook:
    """A list of receivers called on one kind of transition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: tuple[Receiver, ...] = ()
        self._lock = threading.Lock()

    def connect(self, receiver: Receiver) -> Receiver:
        """Call ``receiver(sender=..., task_result=...)`` on every transition. Usable as a
        decorator; connecting the same receiver twice has no effect."""
        with self._lock:
            if receiver not in self._receivers:
                self._receivers = (*self._receivers, receiver)
        return receiver

    def disconnect(self, receiver: Receiver) -> None:
        with self._lock:
            self._receivers = tuple(r for r in self._receivers if r != receiver)

    def send(self, sender: type, task_result: TaskResult[Any]) -> None:
        for receiver in self._receivers:
            try:
                receiver(sender=sender, task_result=task_result)
            except Exception:
                logger.exception("%s receiver %r raised; ignored", self.name, receiver)

    def __repr__(self) -> str:
        return f"<Hook {self.name} receivers={len(self._receivers)}>"


task_enqueued = Hook("task_enqueued")
task_started = Hook("task_started")
task_finished = Hook("task_finished")


def announce_enqueued(sender: type, result: TaskResult[Any]) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "task enqueued id=%s task=%s queue=%s priority=%s backend=%s",
            result.id,
            result.task.module_path,
            result.task.queue_name,
            result.task.priority,
            result.backend,
        )
    if task_enqueued._receivers:
        task_enqueued.send(sender, result)


def announce_started(sender: type, result: TaskResult[Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "task started id=%s task=%s attempt=%d worker=%s",
            result.id,
            result.task.module_path,
            result.attempts,
            result.worker_ids[-1] if result.worker_ids else "-",
        )
    if task_started._receivers:
        task_started.send(sender, result)


def announce_retry(result: TaskResult[Any], delay: float) -> None:
    """A failed attempt that will be tried again: a log line, no hook."""
    logger.warning(
        "task will retry id=%s task=%s attempt=%d of %d in %.2fs error=%s",
        result.id,
        result.task.module_path,
        result.attempts,
        result.task.retries + 1,
        delay,
        result.errors[-1].message if result.errors else "-",
    )


def announce_finished(
    sender: type, result: TaskResult[Any], exception: BaseException | None = None
) -> None:
    """Log the final state and fire ``task_finished``; for a FAILED task, ``exception`` (the
    attempt's error) goes on the log record (``exc_info``) and is the exception being handled
    while the receivers run."""
    status = result.status
    failed = status is TaskResultStatus.FAILED
    if failed:
        logger.error(
            "task failed id=%s task=%s attempts=%d error=%s",
            result.id,
            result.task.module_path,
            result.attempts,
            result.errors[-1].message if result.errors else "-",
            exc_info=exception,
        )
    elif logger.isEnabledFor(logging.INFO):
        logger.info(
            "task %s id=%s task=%s attempts=%d",
            "succeeded" if status is TaskResultStatus.SUCCESSFUL else status.value.lower(),
            result.id,
            result.task.module_path,
            result.attempts,
        )
    if task_finished._receivers:
        if failed and exception is not None:
            _send_while_handling(exception, sender, result)
        else:
            task_finished.send(sender, result)


def _send_while_handling(exception: BaseException, sender: type, result: TaskResult[Any]) -> None:
    """Send ``task_finished`` inside an ``except`` block for ``exception`` (which is left as it
    was: its traceback and context are restored afterwards)."""
    traceback, context = exception.__traceback__, exception.__context__
    try:
        raise exception
    except BaseException:
        task_finished.send(sender, result)
    finally:
        exception.__traceback__, exception.__context__ = traceback, context


# -- run wrappers --------------------------------------------------------------------------------

#: ``factory(task_result)`` -> a context manager entered around one attempt.
RunWrapper = Callable[["TaskResult[Any]"], AbstractContextManager[Any]]
AsyncRunWrapper = Callable[["TaskResult[Any]"], AbstractAsyncContextManager[Any]]

_run_wrappers: tuple[RunWrapper, ...] = ()
_async_run_wrappers: tuple[AsyncRunWrapper, ...] = ()
_wrappers_lock = threading.Lock()
_inline: contextvars.ContextVar[bool] = contextvars.ContextVar("taskyard_inline", default=False)


def add_run_wrapper(factory: RunWrapper) -> RunWrapper:
    """Enter ``factory(task_result)`` around every attempt run on an executor's own thread.

    Wrappers are housekeeping: one that raises is logged and skipped, and none sees or changes
    the outcome. Adding the same factory twice has no effect."""
    global _run_wrappers
    with _wrappers_lock:
        if factory not in _run_wrappers:
            _run_wrappers = (*_run_wrappers, factory)
    return factory


def add_async_run_wrapper(factory: AsyncRunWrapper) -> AsyncRunWrapper:
    """Like ``add_run_wrapper`` for async tasks run on a worker's event loop: the wrapper is
    an async context manager (it must not block the loop)."""
    global _async_run_wrappers
    with _wrappers_lock:
        if factory not in _async_run_wrappers:
            _async_run_wrappers = (*_async_run_wrappers, factory)
    return factory


def remove_run_wrapper(factory: RunWrapper) -> None:
    global _run_wrappers
    with _wrappers_lock:
        _run_wrappers = tuple(w for w in _run_wrappers if w != factory)


@contextmanager
def running_inline() -> Iterator[None]:
    """Attempts executed in this block run on the caller's thread, connections and
    transaction (Immediate, in-place drains in tests): run wrappers are skipped."""
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def is_inline() -> bool:
    """Whether the current attempt runs inline on its caller's thread."""
    return _inline.get()


@contextmanager
def wrapped_run(result: TaskResult[Any]) -> Iterator[None]:
    """Enter the run wrappers around one attempt (none when running inline)."""
    wrappers = _run_wrappers
    if not wrappers or _inline.get():
        yield
        return
    entered: list[AbstractContextManager[Any]] = []
    for factory in wrappers:
        try:
            manager = factory(result)
            manager.__enter__()
        except Exception:
            logger.exception("run wrapper %r raised before task %s; ignored", factory, result.id)
        else:
            entered.append(manager)
    try:
        yield
    finally:
        for manager in reversed(entered):
            try:
                manager.__exit__(None, None, None)
            except Exception:
                logger.exception("run wrapper %r raised after task %s; ignored", manager, result.id)


@asynccontextmanager
async def awrapped_run(result: TaskResult[Any]) -> AsyncIterator[None]:
    """Enter the async run wrappers around one attempt of an async task (none inline)."""
    wrappers = _async_run_wrappers
    if not wrappers or _inline.get():
        yield
        return
    entered: list[AbstractAsyncContextManager[Any]] = []
    for factory in wrappers:
        try:
            manager = factory(result)
            await manager.__aenter__()
        except Exception:
            logger.exception("run wrapper %r raised before task %s; ignored", factory, result.id)
        else:
            entered.append(manager)
    try:
        yield
    finally:
        for manager in reversed(entered):
            try:
                await manager.__aexit__(None, None, None)
            except Exception:
                logger.exception("run wrapper %r raised after task %s; ignored", manager, result.id)
