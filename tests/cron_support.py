"""Helpers for the cron tests: a controllable clock and three schedulers run side by side."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from taskyard.cron.claims import ClaimStore
from taskyard.cron.schedule import EPOCH, Schedule
from taskyard.cron.scheduler import Scheduler
from tests import tasks

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class SimClock:
    """Simulated time: ``clock()`` returns it, ``advance()`` moves it on. No real waiting."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta = timedelta(seconds=20)) -> None:
        with self._lock:
            self.now += delta

    def set(self, value: datetime) -> None:
        with self._lock:
            self.now = value


def every_nth(start: datetime, end: datetime, step: timedelta, anchor: datetime) -> list[datetime]:
    """Instants ``anchor + k * step`` in ``(start, end]``: expected interval ticks, computed
    independently of the code under test."""
    out = []
    t = anchor
    while t <= end:
        if t > start:
            out.append(t)
        t += step
    return out


def minute_ticks(start: datetime, end: datetime, every_minutes: int) -> list[datetime]:
    """Expected UTC ticks of ``*/N * * * *`` in ``(start, end]``."""
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return every_nth(start, end, timedelta(minutes=every_minutes), midnight)


def run_three(
    schedules: Sequence[Schedule],
    make_store: Callable[[int], ClaimStore],
    clock: SimClock,
    steps: int,
    step: timedelta = timedelta(seconds=20),
    restart_at: int | None = None,
) -> None:
    """Run three schedulers at once, each in its own thread with its own store (its own
    connection), in lock-step over ``steps`` steps of simulated time. At each step the three
    passes run concurrently, so they race for the same ticks. Scheduler 2 is replaced by a
    fresh one at ``restart_at`` (a restart mid-run)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(3, action=lambda: clock.advance(step), timeout=60)

    def make(index: int) -> Scheduler:
        return Scheduler(
            schedules,
            clock=clock,
            stores={"default": make_store(index)},
            scheduler_id=f"sched-{index}",
        )

    def loop(index: int) -> None:
        scheduler = make(index)
        try:
            for n in range(steps):
                if index == 2 and n == restart_at:
                    scheduler.close()
                    scheduler = make(index)
                scheduler.run_pending()
                barrier.wait()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            scheduler.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def record(name: str, **options: Any) -> Schedule:
    """A schedule of ``tests.tasks.record(name)``, every minute unless ``options`` say otherwise."""
    options.setdefault("expression", "* * * * *")
    return Schedule(name=name, task=tasks.record, args=[name], **options)


def race_schedules() -> list[Schedule]:
    """The schedules the three-scheduler races run on every claim store."""
    return [
        record("every-minute"),
        record("every-five", expression="*/5 * * * *"),
        record("paris-quarter", expression="*/15 * * * *", timezone="Europe/Paris"),
        record("ninety-seconds", expression=None, every=timedelta(seconds=90)),
    ]


def race_expected(end: datetime) -> dict[str, list[datetime]]:
    """Every tick of ``race_schedules()`` from ``START`` up to ``end``."""
    return {
        "every-minute": minute_ticks(START, end, 1),
        "every-five": minute_ticks(START, end, 5),
        "paris-quarter": minute_ticks(START, end, 15),
        "ninety-seconds": every_nth(START, end, timedelta(seconds=90), EPOCH),
    }
