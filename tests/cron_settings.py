"""A settings module with a CRON dict (``--settings tests.cron_settings``)."""

TASKS = {"default": {"BACKEND": "taskyard.backends.dummy.DummyBackend"}}
IMPORTS = ["tests.cron_schedules"]
CRON = {
    # overrides the code schedule of the same name: only the interval changes
    "cron-tests.hourly": {"every": "2h"},
    # declared only here
    "cron-tests.nightly": {
        "task": "tests.tasks.record",
        "schedule": "30 2 * * *",
        "args": ["nightly"],
        "timezone": "America/New_York",
        "misfire": "catch_up",
    },
}
