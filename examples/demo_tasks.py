"""Tasks of the `make demo` run (importable by the worker: `--import examples.demo_tasks`)."""

from __future__ import annotations

import time

from taskyard import TaskContext, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True, retries=3, retry_backoff=0.2)
def flaky_fetch(context: TaskContext, url: str) -> str:
    """Fails on its first two attempts, as a flaky network call would, then succeeds."""
    if context.attempt < 3:
        raise ConnectionError(f"{url}: connection reset (attempt {context.attempt})")
    return f"fetched on attempt {context.attempt}"


@task(retries=1, retry_backoff=0.2)
def divide(a: float, b: float) -> float:
    return a / b


@task(takes_context=True)
def resize_images(context: TaskContext, count: int) -> str:
    for done in range(1, count + 1):
        time.sleep(0.1)
        context.set_progress(done, count, f"image {done}/{count}")
    return f"{count} images"


@task(timeout=1)
def stuck_export() -> str:
    while True:  # never finishes: the worker stops it after 1 s
        time.sleep(0.05)


@task(priority=50)
def urgent_alert(message: str) -> str:
    return f"alerted: {message}"


@task
def send_report(total: int) -> str:
    return f"report sent ({total})"
