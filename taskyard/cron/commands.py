"""``taskyard cron``: run the scheduler, list schedules, pause and resume them.

Also ``start_background()``, which ``taskyard worker --with-cron`` uses to run the scheduler
in a thread of the worker process. The argument definitions are reused by Django's
``crontask`` command.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import TextIO

from taskyard.command import Command, CommandError
from taskyard.config import backends
from taskyard.cron.claims import ScheduleState
from taskyard.cron.registry import load_settings_module, schedules
from taskyard.cron.schedule import Schedule
from taskyard.cron.scheduler import Scheduler
from taskyard.exceptions import BackendUnavailable, InvalidTask, InvalidTaskBackend
from taskyard.tasks.execution import utcnow
from taskyard.worker.startup import add_connect_arguments, reach_backend

logger = logging.getLogger("taskyard.cron")


def add_cron_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--list",
        action="store_true",
        help="print every schedule with its next run times and state, then exit",
    )
    group.add_argument("--pause", metavar="NAME", help="pause a schedule (all schedulers)")
    group.add_argument("--resume", metavar="NAME", help="resume a paused schedule")
    parser.add_argument(
        "--count",
        type=int,
        default=3,
        metavar="N",
        help="with --list: how many next run times to show (default 3)",
    )
    parser.add_argument(
        "--backend",
        default=None,
        metavar="ALIAS",
        help="with --pause/--resume of a schedule not declared here: its backend alias",
    )
    parser.add_argument(
        "--scheduler-id",
        default=None,
        help="this scheduler's id in claims and logs (default: cron:hostname:pid)",
    )
    add_connect_arguments(parser)


def declared_schedules() -> list[Schedule]:
    """The schedules of the imported modules, with the settings module's ``CRON`` applied."""
    load_settings_module(backends.settings_module)
    return schedules()


def run_cron(args: argparse.Namespace) -> int:
    try:
        found = declared_schedules()
        if args.list:
            print_list(found, max(1, args.count), sys.stdout)
            return 0
        if args.pause or args.resume:
            return _switch(found, args.pause or args.resume, bool(args.pause), args.backend)
        if not found:
            raise CommandError(
                "no schedules declared: import the modules that declare them "
                "(--import MODULE, or IMPORTS in the settings module) or add a CRON dict to "
                "the settings module"
            )
        for alias in sorted({s.task.backend for s in found}):
            reach_backend(backends[alias], args.connect_retries)
        scheduler = Scheduler(found, scheduler_id=args.scheduler_id)
        scheduler.check()
    except InvalidTask as exc:
        raise CommandError(str(exc)) from None
    with _signals_stop(scheduler):
        try:
            scheduler.run()
        finally:
            scheduler.close()
    return 0


@contextmanager
def _signals_stop(scheduler: Scheduler) -> Iterator[None]:
    """SIGTERM and SIGINT stop the scheduler after its current pass (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("cron scheduler: signal %d received, stopping", signum)
        scheduler.stop()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _switch(found: list[Schedule], name: str, pause: bool, alias: str | None) -> int:
    schedule = next((s for s in found if s.name == name), None)
    if schedule is None and alias is None:
        known = ", ".join(s.name for s in found) or "(none)"
        raise CommandError(
            f"no schedule named {name!r} is declared here (declared: {known}); "
            "pass --backend ALIAS to change the state of one that is not"
        )
    scheduler = Scheduler(found)
    store = scheduler.store(alias or (schedule.task.backend if schedule else "default"))
    now = utcnow()
    if pause:
        changed = store.pause(name, "paused with taskyard cron --pause", 0, now)
        print(f"{name}: {'paused' if changed else 'was already paused'}")
    else:
        changed = store.resume(name, now)
        print(f"{name}: {'resumed' if changed else 'was not paused'}")
    return 0


# -- listing ---------------------------------------------------------------------------------------


def _when(value: datetime | None, schedule: Schedule) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(schedule.tz):%Y-%m-%d %H:%M:%S %Z}"


def print_list(found: Sequence[Schedule], count: int, out: TextIO) -> None:
    """Every schedule with its next ``count`` run times, newest claimed tick and state."""
    now = utcnow()
    print(f"{len(found)} cron schedule(s); times in each schedule's time zone", file=out)
    scheduler = Scheduler(found)
    for schedule in found:
        task = schedule.task
        call = ", ".join(
            [repr(a) for a in schedule.args] + [f"{k}={v!r}" for k, v in schedule.kwargs.items()]
        )
        print(f"\n{schedule.name}  ->  {task.module_path}({call})", file=out)
        print(f"    when:      {schedule.describe()}", file=out)
        policy = schedule.misfire
        if schedule.misfire != "run_once":
            policy += f" (max_catch_up={schedule.max_catch_up})"
        if schedule.pause_after_failures:
            policy += f"; pause after {schedule.pause_after_failures} failures in a row"
        print(f"    policy:    {policy}", file=out)
        print(f"    backend:   {task.backend}, queue {task.queue_name}", file=out)
        print(f"    declared:  {schedule.source}", file=out)
        upcoming = ", ".join(_when(t, schedule) for t in schedule.next_ticks(now, count))
        print(f"    next:      {upcoming or 'never'}", file=out)
        try:
            store = scheduler.store(task.backend)
            last = store.last_ticks([schedule.name]).get(schedule.name)
            state = store.states([schedule.name]).get(schedule.name, ScheduleState())
        except (BackendUnavailable, InvalidTaskBackend) as exc:
            print(f"    state:     unknown ({exc})", file=out)
            continue
        print(f"    last tick: {_when(last, schedule)}", file=out)
        if state.paused:
            print(
                f"    state:     PAUSED since {_when(state.paused_at, schedule)}: {state.reason}; "
                f"resume with `taskyard cron --resume {schedule.name}`",
                file=out,
            )
        else:
            print("    state:     active", file=out)


# -- inside a worker -------------------------------------------------------------------------------


class BackgroundScheduler:
    """A ``Scheduler`` running in a daemon thread (``taskyard worker --with-cron``)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.thread = threading.Thread(target=self._run, name="taskyard-cron", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.scheduler.run()
        except Exception:
            logger.exception("cron scheduler %s crashed", self.scheduler.scheduler_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass and wait for the thread (up to ``timeout`` seconds)."""
        self.scheduler.stop()
        self.thread.join(timeout)
        self.scheduler.close()


def start_background(scheduler_id: str | None = None) -> BackgroundScheduler | None:
    """Start the scheduler over every declared schedule in a daemon thread.

    Returns ``None`` (and logs a warning) when no schedule is declared. Configuration mistakes
    raise ``InvalidSchedule`` before any thread starts.
    """
    found = declared_schedules()
    if not found:
        logger.warning("--with-cron: no cron schedules are declared; the scheduler is not started")
        return None
    scheduler = Scheduler(found, scheduler_id=scheduler_id)
    scheduler.check()
    return BackgroundScheduler(scheduler)


COMMANDS = [
    Command(
        "cron",
        "run the cron scheduler (or --list, --pause NAME, --resume NAME)",
        add_cron_arguments,
        run_cron,
    ),
]
