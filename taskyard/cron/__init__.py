"""Cron schedules: enqueue tasks periodically, exactly once per tick.

::

    from datetime import timedelta
    from taskyard import task
    from taskyard.cron import cron

    @cron("*/5 * * * *", timezone="Europe/Paris")
    @task
    def cleanup() -> None: ...

    @cron(every=timedelta(minutes=10), args=["eu"], name="sync-eu")
    @task
    def sync(region: str) -> None: ...

``taskyard cron`` (or ``taskyard worker --with-cron``) runs the scheduler; see ``docs/cron.md``.
Cron expressions need ``cronsim`` (``pip install 'taskyard[cron]'``).
"""

from taskyard.cron.claims import Claim, ClaimStore, ScheduleState, store_for
from taskyard.cron.registry import (
    configure_schedules,
    cron,
    get_schedule,
    load_settings_module,
    schedules,
)
from taskyard.cron.schedule import CATCH_UP, RUN_ONCE, SKIP, InvalidSchedule, Schedule
from taskyard.cron.scheduler import Handled, Scheduler

__all__ = [
    "CATCH_UP",
    "RUN_ONCE",
    "SKIP",
    "Claim",
    "ClaimStore",
    "Handled",
    "InvalidSchedule",
    "Schedule",
    "ScheduleState",
    "Scheduler",
    "configure_schedules",
    "cron",
    "get_schedule",
    "load_settings_module",
    "schedules",
    "store_for",
]
