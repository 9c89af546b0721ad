"""`make demo`: a real worker process on an embedded SQLite queue, fed from this process.

1. applies the schema to .demo/taskyard.sqlite3 (`taskyard migrate`);
2. starts `taskyard worker` as a separate process;
3. enqueues a mixture of tasks from here: successes, retries, a failure, a timeout, progress,
   a priority task, a deferred one, a dependency chain and a cancelled one;
4. shows their progress while they run, prints a summary table, and stops the worker warmly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import taskyard
from examples import demo_tasks as t

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".demo"
URL = f"sqlite:///{WORKDIR}/taskyard.sqlite3"


def taskyard_cli(*args: str, **popen: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "taskyard", *args], cwd=ROOT, env=env, **popen)  # type: ignore[call-overload]


def main() -> int:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    print(f"queue: {URL}")
    if taskyard_cli("migrate", "--url", URL, "--log-level", "WARNING").wait() != 0:
        return 1
    log = (WORKDIR / "worker.log").open("wb")
    worker = taskyard_cli(
        "worker",
        "--url",
        URL,
        "--import",
        "examples.demo_tasks",
        "--queues",
        "*",
        "--threads",
        "4",
        stdout=log,
        stderr=log,
    )
    print(f"worker: pid {worker.pid}, log in .demo/worker.log\n")

    taskyard.configure(url=URL)
    results = {
        "add(2, 3)": t.add.enqueue(2, 3),
        "flaky_fetch (retries)": t.flaky_fetch.enqueue("https://example.com"),
        "divide(1, 0) (fails)": t.divide.enqueue(1, 0),
        "resize_images(20)": t.resize_images.enqueue(20),
        "stuck_export (timeout)": t.stuck_export.enqueue(),
        "urgent_alert (priority 50)": t.urgent_alert.enqueue("disk 91% full"),
        "add (in 2 s)": t.add.using(run_after=timedelta(seconds=2)).enqueue(40, 2),
    }
    first = results["add(2, 3)"]
    results["send_report (after add)"] = t.send_report.using(depends_on=first).enqueue(5)
    doomed = t.send_report.using(depends_on=results["divide(1, 0) (fails)"]).enqueue(0)
    results["send_report (after divide)"] = doomed
    cancelled = t.add.using(run_after=timedelta(hours=1)).enqueue(0, 0)
    cancelled.cancel()
    results["add (cancelled)"] = cancelled
    print(f"enqueued {len(results)} tasks from pid {os.getpid()}\n")

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

    print(f"\n{'task':<30} {'status':<11} {'tries':>5}  outcome")
    print("-" * 105)
    for label, result in results.items():
        if result.status == "SUCCESSFUL":
            outcome = repr(result.return_value)
        elif result.errors:
            outcome = result.errors[-1].message[:75]
        else:
            outcome = "-"
        print(f"{label:<30} {result.status:<11} {result.attempts:>5}  {outcome}")

    worker.send_signal(signal.SIGTERM)
    code = worker.wait(30)
    log.close()
    print(f"\nworker stopped (exit code {code}); `taskyard status`:\n")
    taskyard_cli("status", "--url", URL, "--log-level", "WARNING").wait()
    expected = {"SUCCESSFUL": 6, "FAILED": 2, "CANCELLED": 2}
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.status] = counts.get(result.status, 0) + 1
    ok = counts == expected and code == 0
    print("\ndemo finished: all as expected" if ok else f"\nunexpected outcome: {counts}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
