"""Schedules from the settings (the CRON dict): new ones, overrides, and mistakes."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from taskyard.cron import InvalidSchedule, configure_schedules, cron, registry, schedules
from taskyard.cron.registry import ScheduleRegistry, load_settings_module
from tests import tasks


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[ScheduleRegistry]:
    with registry.isolated() as reg:
        yield reg


def test_a_settings_schedule() -> None:
    configure_schedules(
        {
            "nightly": {
                "task": "tests.tasks.record",
                "schedule": "30 2 * * *",
                "args": ["nightly"],
                "timezone": "Europe/Paris",
                "misfire": "catch_up",
                "max_catch_up": 5,
                "pause_after_failures": 3,
            },
            "poll": {"task": "tests.tasks.noop", "every": 90, "start": "2026-01-01T00:00:00+01:00"},
        }
    )
    nightly, poll = schedules()
    assert nightly.name == "nightly" and nightly.task is tasks.record
    assert nightly.args == ("nightly",) and nightly.timezone == "Europe/Paris"
    assert nightly.misfire == "catch_up" and nightly.max_catch_up == 5
    assert nightly.pause_after_failures == 3
    assert nightly.source == "configure"
    assert poll.every == timedelta(seconds=90)
    assert poll.start is not None and poll.start.isoformat() == "2025-12-31T23:00:00+00:00"


def test_settings_override_the_code_declaration_field_by_field() -> None:
    cron("*/5 * * * *", args=[1, 2], name="adder", timezone="Europe/Paris")(tasks.add)
    configure_schedules({"adder": {"schedule": "@hourly"}})
    (adder,) = schedules()
    assert adder.expression == "@hourly"
    assert adder.args == (1, 2) and adder.timezone == "Europe/Paris"  # kept from the code
    assert adder.task is tasks.add
    configure_schedules({"adder": {"every": "10m"}})
    (adder,) = schedules()
    assert adder.expression is None and adder.every == timedelta(minutes=10)


def test_settings_can_disable_a_code_schedule() -> None:
    cron("@daily", name="report")(tasks.noop)
    configure_schedules({"report": {"enabled": False}})
    assert schedules() == []
    configure_schedules({})  # configuring again replaces the settings layer
    assert [s.name for s in schedules()] == ["report"]


def test_override_applies_to_code_declared_after_the_settings_were_loaded() -> None:
    configure_schedules({"late": {"schedule": "@weekly"}})
    with pytest.raises(InvalidSchedule, match=r"'late'.*no task given"):
        schedules()
    cron("@daily", name="late")(tasks.noop)
    assert schedules()[0].expression == "@weekly"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": "tests.tasks.noop", "schedule": "99 * * * *"}, "invalid cron expression"),
        (
            {"task": "tests.tasks.noop", "schedule": "@daily", "timezone": "Nowhere/Land"},
            "unknown timezone",
        ),
        ({"task": "tests.tasks.not_a_task", "schedule": "@daily"}, "not a task"),
        ({"task": "tests.no_such_module.f", "schedule": "@daily"}, "cannot import module"),
        ({"task": "tests.tasks.noop", "every": 0}, "at least 1 second"),
        ({"task": "tests.tasks.noop", "every": "soon"}, "not an interval"),
        ({"task": "tests.tasks.noop", "schedule": "@daily", "every": 60}, "not both"),
        ({"task": "tests.tasks.noop", "schedule": "@daily", "cron": "x"}, "unknown key.*'cron'"),
        ({"task": "tests.tasks.noop", "every": 60, "start": "2026-01-01"}, "naive"),
        ({"task": "noop", "schedule": "@daily"}, "module path"),
        ("@daily", "must be a dict"),
    ],
)
def test_mistakes_in_the_settings_name_the_schedule(entry: Any, message: str) -> None:
    with pytest.raises(InvalidSchedule, match=rf"'broken'.*{message}"):
        configure_schedules({"broken": entry})


def test_cron_must_be_a_dict() -> None:
    with pytest.raises(InvalidSchedule, match="CRON must be a dict"):
        configure_schedules(["not", "a", "dict"])  # type: ignore[arg-type]


def test_the_settings_module_cron_dict() -> None:
    import tests.cron_schedules

    importlib.reload(tests.cron_schedules)  # declare its schedules in this test's registry
    importlib.import_module("tests.cron_settings")
    assert load_settings_module("tests.cron_settings")
    assert not load_settings_module(None)
    by_name = {s.name: s for s in schedules()}
    assert sorted(by_name) == [
        "cron-tests.hourly",
        "cron-tests.nightly",
        "tests.cron_schedules.every_five_minutes",
    ]
    assert by_name["cron-tests.hourly"].every == timedelta(hours=2)
    assert by_name["cron-tests.hourly"].args == ("hourly",)
    assert by_name["cron-tests.nightly"].source == "settings module tests.cron_settings"
