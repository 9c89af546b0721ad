"""Declaring schedules: expressions, aliases, intervals, and every kind of bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskyard import task
from taskyard.cron import InvalidSchedule, Schedule, cron, registry
from taskyard.cron.registry import ScheduleRegistry
from tests import tasks

T0 = datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC)  # a Monday


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[ScheduleRegistry]:
    with registry.isolated() as reg:
        yield reg


def ticks(expression: str, count: int = 3, after: datetime = T0, tz: str = "UTC") -> list[str]:
    schedule = Schedule(name="s", task=tasks.noop, expression=expression, timezone=tz)
    return [t.strftime("%Y-%m-%d %H:%M") for t in schedule.next_ticks(after, count)]


def test_five_fields() -> None:
    assert ticks("*/15 * * * *") == ["2026-01-05 10:15", "2026-01-05 10:30", "2026-01-05 10:45"]


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@hourly", "2026-01-05 11:00"),
        ("@daily", "2026-01-06 00:00"),
        ("@midnight", "2026-01-06 00:00"),
        ("@weekly", "2026-01-11 00:00"),
        ("@monthly", "2026-02-01 00:00"),
        ("@yearly", "2027-01-01 00:00"),
        ("@annually", "2027-01-01 00:00"),
        ("@DAILY", "2026-01-06 00:00"),
    ],
)
def test_aliases(alias: str, first: str) -> None:
    assert ticks(alias, 1) == [first]


def test_day_and_month_names() -> None:
    assert ticks("0 9 * * mon-fri", 6) == [
        "2026-01-06 09:00",
        "2026-01-07 09:00",
        "2026-01-08 09:00",
        "2026-01-09 09:00",
        "2026-01-12 09:00",
        "2026-01-13 09:00",
    ]
    assert ticks("0 0 1 MAR,SEP *", 2) == ["2026-03-01 00:00", "2026-09-01 00:00"]


def test_timezone_applies_to_cron_expressions() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    winter = Schedule(name="s", task=tasks.noop, expression="0 9 * * *", timezone="Europe/Paris")
    assert winter.next_tick(T0) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
    assert winter.next_tick(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(
        2026, 7, 1, 7, 0, tzinfo=UTC
    )
    assert winter.tz == ZoneInfo("Europe/Paris")


def test_interval_ticks_are_aligned_to_the_epoch_or_to_start() -> None:
    aligned = Schedule(name="s", task=tasks.noop, every=timedelta(minutes=5))
    assert aligned.next_ticks(T0, 2) == [
        datetime(2026, 1, 5, 10, 10, tzinfo=UTC),
        datetime(2026, 1, 5, 10, 15, tzinfo=UTC),
    ]
    start = datetime(2026, 1, 5, 11, 0, 10, tzinfo=ZoneInfo("Europe/Paris"))  # 10:00:10 UTC
    anchored = Schedule(name="s", task=tasks.noop, every=timedelta(minutes=7), start=start)
    assert anchored.next_tick(T0) == datetime(2026, 1, 5, 10, 14, 10, tzinfo=UTC)
    future = Schedule(
        name="s", task=tasks.noop, every=timedelta(hours=1), start=T0 + timedelta(days=1)
    )
    assert future.next_tick(T0) == T0 + timedelta(days=1)  # the first run time


def test_every_accepts_seconds_and_text() -> None:
    assert Schedule(name="a", task=tasks.noop, every=90).every == timedelta(seconds=90)
    assert Schedule(name="b", task=tasks.noop, every="5m").every == timedelta(minutes=5)  # type: ignore[arg-type]


def test_decorator_stacks_above_task_and_returns_it(fresh_registry: ScheduleRegistry) -> None:
    declared = cron("*/5 * * * *", args=[1, 2], name="adder")(tasks.add)
    assert declared is tasks.add
    (schedule,) = registry.schedules()
    assert schedule.name == "adder"
    assert schedule.task is tasks.add
    assert schedule.args == (1, 2)


def test_default_name_is_the_task_module_path() -> None:
    cron(every=timedelta(minutes=1))(tasks.noop)
    assert [s.name for s in registry.schedules()] == ["tests.tasks.noop"]


def test_same_declaration_twice_is_not_a_duplicate() -> None:
    cron("@hourly")(tasks.noop)
    cron("@hourly")(tasks.noop)  # the module imported again
    assert len(registry.schedules()) == 1


# -- bad input: each one a clear error at declaration, naming the schedule -------------------------


def test_invalid_expression_names_the_schedule() -> None:
    with pytest.raises(
        InvalidSchedule, match=r"'nightly'.*invalid cron expression '61 \* \* \* \*'"
    ):
        cron("61 * * * *", name="nightly")(tasks.noop)
    with pytest.raises(InvalidSchedule, match=r"'tests.tasks.noop'.*'every day'"):
        cron("every day")(tasks.noop)


def test_wrong_number_of_fields() -> None:
    with pytest.raises(InvalidSchedule, match=r"'six'.*6 field\(s\), expected 5"):
        cron("0 */5 * * * *", name="six")(tasks.noop)


def test_unknown_alias() -> None:
    with pytest.raises(InvalidSchedule, match=r"'boot'.*unknown cron alias '@reboot'"):
        cron("@reboot", name="boot")(tasks.noop)


def test_expression_that_never_matches() -> None:
    with pytest.raises(InvalidSchedule, match=r"'feb30'"):
        cron("0 0 30 2 *", name="feb30")(tasks.noop)


def test_unknown_timezone() -> None:
    with pytest.raises(InvalidSchedule, match=r"'report'.*unknown timezone 'Mars/Olympus'"):
        cron("0 9 * * *", timezone="Mars/Olympus", name="report")(tasks.noop)


def test_schedule_on_a_function_that_is_not_a_task() -> None:
    def plain() -> None: ...

    with pytest.raises(InvalidSchedule, match=r"plain'.*stacked above @task.*not a task"):
        cron("* * * * *")(plain)
    with pytest.raises(InvalidSchedule, match=r"'named'.*not a task"):
        cron("* * * * *", name="named")(tasks.not_a_task)


def test_cron_below_task_is_refused() -> None:
    with pytest.raises(InvalidSchedule, match="stacked above @task"):

        @task
        @cron("* * * * *")
        def inverted() -> None: ...


def test_two_schedules_with_the_same_name() -> None:
    cron("*/5 * * * *", name="sync")(tasks.noop)
    with pytest.raises(InvalidSchedule, match=r"two cron schedules are named 'sync'"):
        cron("*/10 * * * *", name="sync")(tasks.add)
    cron("@daily")(tasks.record)
    with pytest.raises(InvalidSchedule, match=r"'tests.tasks.record'.*name="):
        cron("@hourly")(tasks.record)  # a second schedule of the same task needs a name


@pytest.mark.parametrize("every", [timedelta(0), timedelta(seconds=-5), 0, -1, "0s"])
def test_interval_of_zero_or_less(every: object) -> None:
    with pytest.raises(InvalidSchedule, match=r"'tick'.*every must be at least 1 second"):
        cron(every=every, name="tick")(tasks.noop)  # type: ignore[arg-type]


def test_both_or_neither_of_expression_and_every() -> None:
    with pytest.raises(InvalidSchedule, match=r"'x'.*not both"):
        cron("* * * * *", every=timedelta(minutes=1), name="x")(tasks.noop)
    with pytest.raises(InvalidSchedule, match=r"'y'.*not neither"):
        cron(name="y")(tasks.noop)


def test_naive_start_is_refused() -> None:
    with pytest.raises(InvalidSchedule, match=r"'z'.*naive datetime"):
        cron(every=timedelta(hours=1), start=datetime(2026, 1, 1), name="z")(tasks.noop)


def test_arguments_must_be_json() -> None:
    with pytest.raises(InvalidSchedule, match=r"'j'.*not JSON"):
        cron("@daily", args=[object()], name="j")(tasks.echo)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"misfire": "sometimes"}, "misfire must be one of run_once, catch_up, skip"),
        ({"max_catch_up": 0}, "max_catch_up must be a whole number >= 1"),
        ({"pause_after_failures": 0}, "pause_after_failures must be a whole number >= 1"),
        ({"misfire_grace": -1}, "misfire_grace must be a positive"),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSchedule, match=rf"'o'.*{message}"):
        cron("@daily", name="o", **options)(tasks.noop)  # type: ignore[arg-type]


def test_bad_names() -> None:
    with pytest.raises(InvalidSchedule, match="without spaces"):
        cron("@daily", name="has space")(tasks.noop)
    with pytest.raises(InvalidSchedule, match="non-empty"):
        cron("@daily", name="")(tasks.noop)
