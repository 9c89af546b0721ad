"""Task functions used by the test-suite (module-level so workers can import them)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from taskyard import TaskCancelled, TaskContext, task

#: Names of tasks in the order they ran (only meaningful for in-process execution).
RUN_LOG: list[str] = []
#: Events that ``gate`` tasks wait on, by name.
GATES: dict[str, threading.Event] = {}


@task
def noop() -> None:
    return None


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def record(name: str) -> str:
    RUN_LOG.append(name)
    return name


@task(priority=0)
def record_priority(name: str) -> str:
    RUN_LOG.append(name)
    return name


@task
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@task(takes_context=True, retries=3, retry_backoff=0)
def flaky(context: TaskContext, succeed_on: int) -> int:
    if context.attempt < succeed_on:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return context.attempt


@task(retries=2, retry_backoff=0)
def always_fails() -> None:
    raise ConnectionError("still down")


@task(retries=3, retry_backoff=0, retry_on=(ConnectionError,))
def fails_with_value_error() -> None:
    raise ValueError("not retryable")


@task(timeout=0.3)
def too_slow(seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    return "finished"


@task(timeout=0.3)
def swallows_exceptions(seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.02)
        except Exception:  # a careless task: TaskTimeout must still get through
            pass
    return "finished"


@task(takes_context=True)
def with_context(context: TaskContext, steps: int) -> dict[str, Any]:
    for step in range(1, steps + 1):
        context.set_progress(step, steps, f"step {step}")
        context.heartbeat()
    return {"attempt": context.attempt, "id": context.task_result.id}


@task(takes_context=True)
def until_cancelled(context: TaskContext, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if context.is_cancelled():
            raise TaskCancelled("stopped on request")
        time.sleep(0.01)
    return "not cancelled"


@task
def gate(name: str, seconds: float = 10.0) -> str:
    event = GATES.setdefault(name, threading.Event())
    event.wait(seconds)
    return name


@task
def gate_then_fail(name: str, seconds: float = 10.0) -> str:
    GATES.setdefault(name, threading.Event()).wait(seconds)
    raise RuntimeError(f"{name} failed after its gate opened")


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(timeout=0.3)
async def async_too_slow() -> str:
    await asyncio.sleep(5)
    return "finished"


@task
async def async_span(seconds: float) -> list[float]:
    """Waits, and returns when it started and ended (wall clock: comparable across processes)."""
    started = time.time()
    await asyncio.sleep(seconds)
    return [started, time.time()]


@task
async def async_sleeps(seconds: float = 10.0) -> str:
    """Waits without ever checking for cancellation: only cancelling the coroutine stops it."""
    await asyncio.sleep(seconds)
    return "slept"


@task(takes_context=True)
async def async_with_progress(context: TaskContext, steps: int, pause: float = 0.0) -> int:
    for step in range(1, steps + 1):
        context.set_progress(step, steps, f"step {step}")
        await asyncio.sleep(pause)
    return steps


@task(takes_context=True, retries=3, retry_backoff=0)
async def async_flaky(context: TaskContext, succeed_on: int) -> int:
    await asyncio.sleep(0)
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} failed")
    return context.attempt


@task
async def async_blocks_the_loop(seconds: float) -> str:
    """A coroutine that calls a blocking function: it stalls its event loop."""
    time.sleep(seconds)
    return "blocked"


@task
def returns_non_json() -> object:
    return object()


@task
def returns_huge_int(digits: int = 5000) -> int:
    return 10**digits


@task(limit=1)
def unique_job(name: str) -> str:
    RUN_LOG.append(name)
    return name


@task
def pid() -> int:
    return os.getpid()


def not_a_task() -> str:
    """A plain function: workers must refuse to run it."""
    return "ran"


@task(takes_context=True, retries=2, retry_backoff=0)
def slow_first_attempt(context: TaskContext, seconds: float) -> int:
    """Sleeps on its first attempt (long enough to be killed), returns at once afterwards."""
    if context.attempt == 1:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
    return context.attempt


@task
def sleepy(seconds: float, name: str = "") -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    RUN_LOG.append(name)
    return name


@task(retries=1, retry_backoff=0)
def poison() -> None:
    """Kills the process running it."""
    os._exit(13)


@task(timeout=0.5)
def blocks_in_c(seconds: float) -> str:
    """One long C call: a thread timeout cannot interrupt it (SIGALRM on the main thread can)."""
    time.sleep(seconds)
    return "woke up"


@task(timeout=0.5)
def ignores_alarm(seconds: float) -> str:
    """Blocks SIGALRM, then one long C call: nothing but ending the process stops it."""
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)
    return "woke up"


@task
def touch(path: str) -> str:
    with open(path, "a") as handle:
        handle.write("ran\n")
    return path


@task(takes_context=True)
def enqueue_dependent_on_self(context: TaskContext) -> str:
    """Enqueues a task depending on this running one (Immediate must refuse: it cannot wait)."""
    try:
        record.using(depends_on=context.task_result.id).enqueue("child")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "enqueued"


def record_callback(*args: object) -> None:
    """A plain function in a task module, used as an rq callback: records that it was called."""
    RUN_LOG.append("callback")


@task
def log_run(path: str, tag: str, seconds: float = 0.0) -> str:
    """Appends ``tag`` to the file at ``path`` (one line per execution), then sleeps."""
    with open(path, "a") as handle:
        handle.write(f"{tag}\n")
    time.sleep(seconds)
    return tag


@task(timeout=1)
def holds_the_gil(n: int) -> int:
    """One long C call that never releases the GIL nor checks for signals: neither SIGALRM nor
    a watchdog thread can interrupt it; only killing its process stops it."""
    return sum(range(n))


@task
def raises_worker_interrupted() -> None:
    """What a task sees when its worker is shut down under it."""
    from taskyard.exceptions import WorkerInterrupted

    raise WorkerInterrupted("shutdown")


@task(takes_context=True)
def raises_unstorable_text(context: TaskContext, text: str) -> None:
    """Reports progress and fails with text no store can hold (built here: arguments cannot
    carry it): ``nul`` or ``surrogate``."""
    bad = {"nul": "\x00", "surrogate": "\ud800"}[text]
    context.set_progress(1, 2, f"at {bad} here")
    raise ValueError(f"bad {bad} input")
