"""`make demo`: a real worker process on an embedded SQLite queue, fed from this process.

1. applies the schema to .demo/taskyard.sqlite3 (`taskyard migrate`);
2. starts `taskyard worker` as a separate process;
3. enqueues a mixture of tasks from here: successes, retries, a failure, a timeout, progress,
   a priority task, a deferred one, a dependency chain and a cancelled one;
4. shows their progress while they run, prints a summary table, and stops the worker warmly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import taskyard
from examples import demo_tasks as t
from taskyard import TaskResult

ROOT = Path(__file__).resolve().parent.parent


def taskyard_cli(*args: str, **popen: object) -> subprocess.Popen[bytes]:
    """Run ``taskyard ARGS`` from the repository root, as a user would (no PYTHONPATH: the
    command puts the current directory first on sys.path, so ``examples.demo_tasks`` imports)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TASKYARD_URL")}
    return subprocess.Popen([sys.executable, "-m", "taskyard", *args], cwd=ROOT, env=env, **popen)  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="taskyard's demo (make demo)")
    parser.add_argument(
        "--dir", type=Path, default=ROOT / ".demo", help="working folder (default .demo)"
    )
    workdir: Path = parser.parse_args(argv).dir.resolve()
    url = f"sqlite:///{workdir}/taskyard.sqlite3"
    os.environ.pop("TASKYARD_URL", None)  # the demo's queue is its own SQLite file
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"queue: {url}")
    if taskyard_cli("migrate", "--url", url, "--log-level", "WARNING").wait() != 0:
        return 1
    log = (workdir / "worker.log").open("wb")
    worker = taskyard_cli(
        "worker",
        "--url",
        url,
        "--import",
        "examples.demo_tasks",
        "--queues",
        "*",
        "--threads",
        "4",
        stdout=log,
        stderr=log,
    )
    print(f"worker: pid {worker.pid}, log in {workdir.name}/worker.log\n")

    taskyard.configure(url=url)
    # One transaction: the worker sees the whole batch at once and claims it by priority, so
    # urgent_alert, enqueued last, starts ahead of the tasks enqueued before it.
    batch = {
        "add(2, 3)": t.add.prepare(2, 3),
        "add(4, 4)": t.add.prepare(4, 4),
        "add(5, 5)": t.add.prepare(5, 5),
        "flaky_fetch (retries)": t.flaky_fetch.prepare("https://example.com"),
        "divide(1, 0) (fails)": t.divide.prepare(1, 0),
        "resize_images(20)": t.resize_images.prepare(20),
        "stuck_export (timeout)": t.stuck_export.prepare(),
        "urgent_alert": t.urgent_alert.prepare("disk 91% full"),
    }
    results = dict(zip(batch, taskyard.enqueue_many(batch.values()), strict=True))
    results["add (in 2 s)"] = t.add.using(run_after=timedelta(seconds=2)).enqueue(40, 2)
    first = results["add(2, 3)"]
    results["send_report (after add)"] = t.send_report.using(depends_on=first).enqueue(5)
    doomed = t.send_report.using(depends_on=results["divide(1, 0) (fails)"]).enqueue(0)
    results["send_report (after divide)"] = doomed
    cancelled = t.add.using(run_after=timedelta(hours=1)).enqueue(0, 0)
    cancelled.cancel()
    results["add (cancelled)"] = cancelled
    print(f"enqueued {len(results)} tasks from pid {os.getpid()}, {len(batch)} in one batch\n")

    deadline = time.monotonic() + 60
    while True:
        for result in results.values():
            result.refresh()
        done = sum(r.is_finished for r in results.values())
        resize = results["resize_images(20)"]
        bar = ""
        if resize.progress is not None and resize.progress.fraction is not None:
            filled = int(resize.progress.fraction * 20)
            bar = f"  resize_images [{'#' * filled}{'.' * (20 - filled)}] {resize.progress.message}"
        print(f"  {done}/{len(results)} finished{bar}", flush=True)
        if done == len(results) or time.monotonic() > deadline:
            break
        time.sleep(0.4)
    print_table(results)
    print_priority(results, list(batch))

    worker.send_signal(signal.SIGTERM)
    code = worker.wait(30)
    log.close()
    print(f"\nworker stopped (exit code {code}); `taskyard status`:\n")
    taskyard_cli("status", "--url", url, "--log-level", "WARNING").wait()
    expected = {"SUCCESSFUL": 8, "FAILED": 2, "CANCELLED": 2}
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.status] = counts.get(result.status, 0) + 1
    ok = counts == expected and code == 0
    print("\ndemo finished: all as expected" if ok else f"\nunexpected outcome: {counts}")
    return 0 if ok else 1


def _finish_order(results: dict[str, TaskResult[Any]]) -> dict[str, int]:
    """Label -> 1, 2, 3... in the order the tasks that ran finished (a worker claims a batch
    at one instant, so finishing times are what tell the order they ran in)."""
    ran = sorted(
        (r.finished_at, label)
        for label, r in results.items()
        if r.finished_at is not None and r.attempts
    )
    return {label: n for n, (_, label) in enumerate(ran, 1)}


def print_table(results: dict[str, TaskResult[Any]]) -> None:
    """The summary: one row per task; long outcomes wrap at word boundaries."""
    order = _finish_order(results)
    head = f"{'task':<27} {'prio':>4} {'status':<11} {'tries':>5} {'done':>5}  "
    width = max(100, shutil.get_terminal_size((120, 24)).columns)
    print(f"\n{head}outcome")
    print("-" * min(width, 120))
    for label, result in results.items():
        if result.status == "SUCCESSFUL":
            outcome = repr(result.return_value)
        elif result.errors:
            outcome = result.errors[-1].message.removeprefix("taskyard.exceptions.")
        else:
            outcome = "-"
        done = f"#{order[label]}" if label in order else "-"
        row = (
            f"{label:<27} {result.task.priority:>4} {result.status:<11} {result.attempts:>5} "
            f"{done:>5}  "
        )
        lines = textwrap.wrap(outcome, max(30, min(width, 120) - len(head))) or ["-"]
        print(row + lines[0])
        for more in lines[1:]:
            print(" " * len(head) + more)


def print_priority(results: dict[str, TaskResult[Any]], batch: list[str]) -> None:
    """How priority showed: urgent_alert (priority 50) came last in its batch."""
    order = _finish_order(results)
    urgent = order.get("urgent_alert")
    if urgent is None:
        return
    ahead = [label for label in batch if label != "urgent_alert"]
    overtaken = sum(1 for label in ahead if order.get(label, 0) > urgent)
    text = (
        f"priority: urgent_alert (priority 50), enqueued last in a batch of {len(batch)}, "
        f"finished #{urgent}: ahead of {overtaken} of the {len(ahead)} priority-0 tasks "
        "enqueued before it. The worker claims due tasks highest priority first and runs 4 at "
        "a time."
    )
    print()
    print(textwrap.fill(text, 100))


if __name__ == "__main__":
    raise SystemExit(main())
