"""Enqueue a mixture of tasks on Redis, let ``taskyard rqworker`` run them, print the results.

    python -m examples.redis_rq.run                        # Redis at redis://127.0.0.1:6379/0
    TASKYARD_URL=redis://127.0.0.1:6379/5 python -m examples.redis_rq.run

It starts ``taskyard rqworker --with-scheduler`` itself, waits for every task, then stops the
worker with SIGTERM (a warm shutdown); in production the worker runs on its own (README.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import taskyard
from examples.redis_rq.tasks import SETTINGS, crunch, flaky, rebuild_index, send_email
from taskyard import TaskLimitError

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    # TASKYARD_URL names the Redis server only; this example adds its two queues and passes
    # the result on explicitly (a flag or configure() below TASKYARD_URL would not win).
    url = os.environ.pop("TASKYARD_URL", None) or SETTINGS["default"]["OPTIONS"]["URL"]
    url = f"{url.split('?')[0]}?queues=default,emails"
    taskyard.configure(SETTINGS, url=url)
    command = ["taskyard", "rqworker", "--url", url]
    command += ["--import", "examples.redis_rq.tasks", "--with-scheduler", "--log-level", "WARNING"]
    # The worker runs from the repository root: taskyard puts it first on sys.path.
    worker = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT)
    try:
        first = send_email.enqueue("x@example.com", "first")
        results = {
            "urgent email": send_email.using(priority=50).enqueue("ops@example.com", "disk!"),
            "newsletter": send_email.enqueue("all@example.com", "news"),
            "flaky upload": flaky.enqueue("upload"),
            "crunch": crunch.enqueue(20),
            "in 2 seconds": send_email.using(run_after=timedelta(seconds=2)).enqueue(
                "a@example.com", "later"
            ),
            "index": rebuild_index.enqueue("products"),
            "after first": send_email.using(depends_on=first).enqueue("x@example.com", "second"),
        }
        try:
            rebuild_index.enqueue("products")
        except TaskLimitError as exc:
            print(f"refused, as it should be: {exc}")
        for name, result in results.items():
            result.wait(timeout=30)
            value = result.return_value if result.status.value == "SUCCESSFUL" else result.errors
            extra = f" progress={result.progress.fraction:.0%}" if result.progress else ""
            print(f"{name:>13}: {result.status.value} attempts={result.attempts}{extra} -> {value}")
        return 0 if all(r.status.value == "SUCCESSFUL" for r in results.values()) else 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
