"""A settings module, as TASKYARD_SETTINGS / --settings name one."""

TASKS = {
    "default": {"BACKEND": "taskyard.backends.immediate.ImmediateBackend"},
    "pool": {
        "BACKEND": "taskyard.backends.threadpool.ThreadPoolBackend",
        "QUEUES": [],
        "OPTIONS": {"MAX_WORKERS": 2},
    },
}
IMPORTS = ["tests.tasks"]
