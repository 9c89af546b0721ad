"""Schedules declared in code, as a user's module declares them (imported by the cron tests)."""

from __future__ import annotations

from datetime import timedelta

from taskyard import task
from taskyard.cron import cron


@cron("*/5 * * * *", timezone="Europe/Paris")
@task
def every_five_minutes() -> str:
    return "five"


@cron(every=timedelta(hours=1), args=["hourly"], name="cron-tests.hourly")
@task
def labelled(label: str) -> str:
    return label
