"""Django settings for the django-tasks-rq peer in ``bench/bench_redis.py`` (Django 5.2 with the
django-tasks backport). The Redis URL comes from ``BENCH_REDIS_URL``."""

import os

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django_rq", "django_tasks", "django_tasks_rq"]
DATABASES: dict[str, dict[str, str]] = {}
_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {"default": {"URL": _URL}, "dj": {"URL": _URL}}
TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["dj"]}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"rq.worker": {"level": "WARNING"}},
}
