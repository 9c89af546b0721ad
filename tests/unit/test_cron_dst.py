"""Daylight saving time: the behaviour documented in docs/cron.md, section "Time zones and DST".

In 2026, America/New_York springs forward on March 8 (02:00 EST -> 03:00 EDT: 02:xx does not
exist) and falls back on November 1 (02:00 EDT -> 01:00 EST: 01:xx happens twice). Paris
changes on March 29 (02:00 -> 03:00) and October 25 (03:00 -> 02:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

import taskyard
from taskyard.backends.dummy import DummyBackend
from taskyard.config import backends
from taskyard.cron import Schedule, Scheduler
from taskyard.cron.claims import MemoryClaimStore
from tests import tasks
from tests.cron_support import SimClock

NY = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def daily(hhmm: str, tz: str = "America/New_York") -> Schedule:
    hour, minute = hhmm.split(":")
    return Schedule(
        name="daily", task=tasks.noop, expression=f"{int(minute)} {int(hour)} * * *", timezone=tz
    )


def local_day(schedule: Schedule, day: datetime) -> list[datetime]:
    """The schedule's ticks during one local calendar day (00:00 to 24:00 on the wall clock)."""
    start = datetime(day.year, day.month, day.day, tzinfo=schedule.tz)
    end = start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    second = timedelta(seconds=1)
    return schedule.latest_ticks(start.astimezone(UTC) - second, end.astimezone(UTC) - second, 100)


def test_0230_on_the_spring_forward_day_runs_once_at_0300() -> None:
    schedule = daily("02:30")
    assert schedule.next_ticks(utc(2026, 3, 7, 0, 0), 3) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 0),  # 02:30 does not exist: 03:00 EDT, the first instant after the gap
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    assert [
        t.astimezone(NY).strftime("%H:%M %Z") for t in local_day(schedule, utc(2026, 3, 8))
    ] == ["03:00 EDT"]


def test_0130_on_the_fall_back_day_runs_once_at_the_first_0130() -> None:
    schedule = daily("01:30")
    assert schedule.next_ticks(utc(2026, 10, 31, 12, 0), 2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT; the second 01:30 (EST, 06:30 UTC) is not a tick
        utc(2026, 11, 2, 6, 30),  # 01:30 EST the next day
    ]
    # A scheduler whose cursor sits in the repeated hour, after the first 01:30, does not run
    # it again at the second 01:30.
    inside_repeat = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=NY)  # 01:10 EST = 06:10 UTC
    assert schedule.next_tick(inside_repeat) == utc(2026, 11, 2, 6, 30)


def test_paris_spring_forward_and_fall_back() -> None:
    schedule = daily("02:30", "Europe/Paris")
    assert schedule.next_tick(utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    # 02:30 happens twice on October 25: the first one (CEST) runs, the second does not.
    assert schedule.next_ticks(utc(2026, 10, 24, 12, 0), 2) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


@pytest.mark.parametrize(("day", "runs"), [(utc(2026, 3, 8), 23), (utc(2026, 11, 1), 25)])
def test_hourly_schedules_follow_elapsed_time(day: datetime, runs: int) -> None:
    # A wildcard hour runs every real hour: 23 runs on the short day, 25 on the long day
    # (01:00 EDT and 01:00 EST both run).
    schedule = Schedule(
        name="h", task=tasks.noop, expression="0 * * * *", timezone="America/New_York"
    )
    ticks = local_day(schedule, day)
    assert len(ticks) == runs
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(ticks))


def test_interval_schedules_ignore_dst() -> None:
    schedule = Schedule(
        name="i",
        task=tasks.noop,
        every=timedelta(hours=1),
        start=datetime(2026, 10, 31, 0, 0, tzinfo=NY),
        timezone="America/New_York",
    )
    ticks = schedule.next_ticks(utc(2026, 11, 1, 3, 0), 4)
    assert [t.astimezone(NY).strftime("%H:%M %Z") for t in ticks] == [
        "00:00 EDT",
        "01:00 EDT",
        "01:00 EST",
        "02:00 EST",
    ]


@pytest.mark.parametrize(
    ("hhmm", "day", "expected"),
    [
        ("02:30", utc(2026, 3, 8), [utc(2026, 3, 8, 7, 0)]),
        ("01:30", utc(2026, 11, 1), [utc(2026, 11, 1, 5, 30)]),
    ],
)
def test_a_scheduler_stepping_through_the_dst_day(
    hhmm: str, day: datetime, expected: list[datetime]
) -> None:
    """Minute by minute through the local day, three schedulers enqueue the tick once."""
    taskyard.configure({"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend"}})
    backend = backends["default"]
    assert isinstance(backend, DummyBackend)
    store = MemoryClaimStore(backend)
    start = datetime(day.year, day.month, day.day, tzinfo=NY).astimezone(UTC)
    clock = SimClock(start)
    schedulers = [
        Scheduler([daily(hhmm)], clock=clock, stores={"default": store}, scheduler_id=f"s{i}")
        for i in range(3)
    ]
    handled = []
    while clock() < start + timedelta(hours=25):
        for scheduler in schedulers:
            handled += [h for h in scheduler.run_pending() if h.claim.claimed]
        clock.advance(timedelta(minutes=1))
    assert [h.tick for h in handled] == expected
    assert len(backend.results) == 1
