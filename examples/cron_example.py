"""taskyard cron: periodic tasks declared in code, run exactly once per tick.

    python -m examples.cron_example                  # list the schedules, run the scheduler
                                                     # in-process for a few seconds
    taskyard cron --import examples.cron_example --list
    taskyard cron --import examples.cron_example --url sqlite:///taskyard.sqlite3
    taskyard worker --with-cron --import examples.cron_example --url sqlite:///taskyard.sqlite3

Start `taskyard cron` several times (on several machines): each tick is still enqueued once.
See docs/cron.md.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import timedelta

import taskyard
from taskyard import task
from taskyard.cron import Scheduler, cron, schedules
from taskyard.cron.commands import print_list


@cron("0 3 * * *", timezone="Europe/Paris")  # every night at 03:00, Paris time (DST-aware)
@task
def purge_sessions() -> int:
    """Delete expired sessions; returns how many."""
    return 0


@cron(
    "*/15 9-17 * * mon-fri",
    timezone="America/New_York",
    name="market-snapshot",
    args=["NYSE"],
    pause_after_failures=3,  # three failed runs in a row pause the schedule
)
@task(retries=2)
def snapshot(exchange: str) -> str:
    return f"snapshot of {exchange}"


@cron(every=timedelta(seconds=1), name="heartbeat", misfire="skip")
@task
def heartbeat() -> str:
    return "alive"


def main(seconds: float = 3.5) -> int:
    logging.basicConfig(level=logging.INFO, format="  log: %(message)s")
    taskyard.configure(url=os.environ.get("TASKYARD_URL", "threadpool:?max_workers=2"))
    print_list(schedules(), 2, sys.stdout)

    print(f"\nrunning the scheduler for {seconds}s (the heartbeat is due every second)\n")
    scheduler = Scheduler()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        delay = scheduler.step()  # one pass; returns the seconds until the next tick
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
    scheduler.close()

    store = scheduler.store("default")
    ids = store.recent_task_ids("heartbeat", 10, None)
    backend = taskyard.task_backends["default"]
    results = [backend.get_result(i).wait(timeout=10) for i in ids]
    print(f"\nheartbeat ran {len(results)} time(s): {[r.return_value for r in results]}")
    backend.close()
    return 0 if results and all(r.return_value == "alive" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
