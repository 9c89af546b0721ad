"""Settings of the Django test project (SQLite by default, PostgreSQL with
TASKYARD_DJANGO_DB=postgres)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import django

SECRET_KEY = "taskyard-tests"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskyard.contrib.django",
    "tests.django.testapp",
    "tests.django.alerting",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(0, "django_tasks")
try:  # django-rq's rqworker runs taskyard's Redis tasks (tests/django/test_redis.py)
    import django_rq  # noqa: F401

    INSTALLED_APPS.append("django_rq")
except ImportError:
    pass

REDIS_URL = os.environ.get("TASKYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RQ_QUEUES = {"default": {"URL": REDIS_URL}, "emails": {"URL": REDIS_URL}}
# The only setting django-rq needs: its rqworker then runs taskyard's jobs, with no flag.
RQ = {"WORKER_CLASS": "taskyard.backends.redis.worker.TaskyardSimpleWorker"}

# fullctl-style Setting qualifiers (tests/django/alerting/tasks.py) are checked against these
IMPORTANT_SETTING = True
IMPORTANT_LIST = ["abc"]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("TASKYARD_DJANGO_DB") == "postgres":
    _url = urlsplit(
        os.environ.get("TASKYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    _pg = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname,
        "PORT": _url.port or 5432,
    }
    # Test databases are named after the server database, so runs against different
    # TASKYARD_TEST_POSTGRES_URL databases (parallel checkouts) do not collide.
    _test_name = f"taskyard_django_{_pg['NAME']}"
    DATABASES = {
        "default": {**_pg, "TEST": {"NAME": _test_name}},
        "queue2": {**_pg, "TEST": {"NAME": f"{_test_name}_q2"}},
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "queue2": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }

TASKS = {
    "default": {
        "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
        "QUEUES": ["default", "emails"],
    },
    "dummy": {"BACKEND": "taskyard.contrib.django.backends.DummyBackend", "QUEUES": []},
    "immediate": {"BACKEND": "taskyard.contrib.django.backends.ImmediateBackend", "QUEUES": []},
    "threadpool": {
        "BACKEND": "taskyard.contrib.django.backends.ThreadPoolBackend",
        "QUEUES": [],
        "OPTIONS": {"MAX_WORKERS": 2},
    },
}
