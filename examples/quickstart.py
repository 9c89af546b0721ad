"""taskyard quickstart: declare tasks, enqueue a mixture, watch what happens.

    python -m examples.quickstart                  # on the ThreadPool backend
    TASKYARD_URL=immediate: python -m examples.quickstart

One task succeeds, one fails twice and then succeeds on its third attempt, one fails for good,
one reports progress, and one is cancelled before it runs.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

import taskyard
from taskyard import TaskContext, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True, retries=3, retry_backoff=0.05)
def flaky_fetch(context: TaskContext, url: str) -> str:
    """Fails on its first two attempts (as a flaky network call would), then succeeds."""
    if context.attempt < 3:
        raise ConnectionError(f"{url}: connection reset (attempt {context.attempt})")
    return f"fetched {url} on attempt {context.attempt}"


@task(retries=1, retry_backoff=0.05)
def divide(a: float, b: float) -> float:
    return a / b


@task(takes_context=True)
def resize_images(context: TaskContext, count: int) -> int:
    for done in range(1, count + 1):
        time.sleep(0.02)
        context.set_progress(done, count, f"image {done} of {count}")
    return count


@task
def send_reminder(user: str) -> str:
    return f"reminded {user}"


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s")
    taskyard.configure(url=os.environ.get("TASKYARD_URL", "threadpool:?max_workers=4"))
    backend = taskyard.backends["default"]
    print(f"taskyard quickstart on {type(backend).__name__}\n")

    results = {
        "add(2, 3)": add.enqueue(2, 3),
        "flaky_fetch(...)": flaky_fetch.enqueue("https://example.com"),
        "divide(1, 0)": divide.enqueue(1, 0),
        "resize_images(10)": resize_images.enqueue(10),
    }
    if backend.supports_defer:
        later = send_reminder.using(run_after=timedelta(hours=1)).enqueue("ada")
        later.cancel()
        results["send_reminder (cancelled)"] = later

    for result in results.values():
        result.wait(timeout=30)

    print(f"{'task':<28} {'status':<11} {'attempts':>8}  outcome")
    print("-" * 78)
    for label, result in results.items():
        if result.status == "SUCCESSFUL":
            outcome = repr(result.return_value)
        elif result.errors:
            outcome = result.errors[-1].message
        else:
            outcome = "-"
        print(f"{label:<28} {result.status:<11} {result.attempts:>8}  {outcome}")
    progress = results["resize_images(10)"].progress
    if progress is not None:
        print(
            f"\nresize_images reported progress {progress.current:g}/{progress.total:g} "
            f"({progress.message})"
        )
    expected = {"SUCCESSFUL": 3, "FAILED": 1}
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.status] = counts.get(result.status, 0) + 1
    ok = all(counts.get(k, 0) == v for k, v in expected.items())
    print("\nall as expected" if ok else f"\nunexpected outcome: {counts}")
    backend.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
