"""Settings for the cron example, per environment without code changes.

taskyard cron --settings examples.cron_settings
taskyard worker --with-cron --settings examples.cron_settings
"""

TASKS = {
    "default": {
        "BACKEND": "taskyard.backends.database.DatabaseBackend",
        "QUEUES": [],
        "OPTIONS": {"URL": "sqlite:///taskyard.sqlite3"},
    }
}
IMPORTS = ["examples.cron_example"]  # modules declaring tasks and @cron schedules
CRON = {
    # declared only here
    "london-close": {
        "task": "examples.cron_example.snapshot",
        "schedule": "35 16 * * mon-fri",  # or "every": "15m" / 900, with an optional "start"
        "args": ["LSE"],
        "timezone": "Europe/London",
        "misfire": "catch_up",
        "max_catch_up": 3,
        "pause_after_failures": 3,
    },
    # overrides the fields it gives of the schedule declared with @cron
    "market-snapshot": {"schedule": "*/5 9-17 * * mon-fri"},
    # turns a code schedule off in this environment
    "examples.cron_example.purge_sessions": {"enabled": False},
}
