"""taskyard quickstart: declare tasks, enqueue a mixture, watch what happens.

    python -m examples.quickstart                  # on the ThreadPool backend
    TASKYARD_URL=immediate: python -m examples.quickstart

One task succeeds, one fails twice and then succeeds on its third attempt, one fails for good,
one reports progress, and one is cancelled before it runs (tasks from examples/demo_tasks.py).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import taskyard
from examples.demo_tasks import add, divide, flaky_fetch, resize_images, send_report


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s")
    taskyard.configure(url=os.environ.get("TASKYARD_URL", "threadpool:?max_workers=4"))
    backend = taskyard.task_backends["default"]
    print(f"taskyard quickstart on {type(backend).__name__}\n")

    results = {
        "add(2, 3)": add.enqueue(2, 3),
        "flaky_fetch(...)": flaky_fetch.enqueue("https://example.com"),
        "divide(1, 0)": divide.enqueue(1, 0),
        "resize_images(10)": resize_images.enqueue(10),
    }
    if backend.supports_defer:
        later = send_report.using(run_after=timedelta(hours=1)).enqueue(0)
        later.cancel()
        results["send_report (cancelled)"] = later

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
