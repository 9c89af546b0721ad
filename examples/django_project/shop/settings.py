"""Settings of the example shop. ``APP_ENV`` picks the task backend per environment:

* ``development`` (default): Immediate — tasks run inline, nothing else to start;
* ``test``: Dummy — tests assert on what was enqueued;
* ``production``: the Database backend on this project's database (``DATABASE_URL`` picks
  PostgreSQL), or Redis when ``TASKS_REDIS_URL`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import django

BASE_DIR = Path(__file__).resolve().parent.parent
APP_ENV = os.environ.get("APP_ENV", "development")
SECRET_KEY = os.environ.get("SECRET_KEY", "example-only-not-secret")
DEBUG = APP_ENV == "development"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "shop.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskyard.contrib.django",
    "shop",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(0, "django_tasks")  # the backport, on Django 5.2

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

_db = urlsplit(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'shop.sqlite3'}"))
if _db.scheme.startswith("postgres"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _db.path.lstrip("/"),
            "USER": _db.username or "",
            "PASSWORD": _db.password or "",
            "HOST": _db.hostname or "",
            "PORT": _db.port or 5432,
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _db.path}}

# A second database for the queue, as the Flagsmith processor allows (docs/django.md, "The
# queue in another database"): `manage.py move_task_processor_data --source-db default
# --target-db tasks` moves the task rows there. SQLite next to the project unless
# TASKS_DATABASE_URL names another file.
_tasks_db = urlsplit(
    os.environ.get("TASKS_DATABASE_URL", f"sqlite:///{BASE_DIR / 'tasks.sqlite3'}")
)
DATABASES["tasks"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": _tasks_db.path}

_QUEUES = ["default", "emails"]
if APP_ENV == "test":
    TASKS = {
        "default": {"BACKEND": "taskyard.contrib.django.backends.DummyBackend", "QUEUES": _QUEUES}
    }
elif APP_ENV == "production" and os.environ.get("TASKS_REDIS_URL"):
    TASKS = {
        "default": {
            "BACKEND": "taskyard.contrib.django.backends.RedisBackend",
            "QUEUES": _QUEUES,
            "OPTIONS": {"URL": os.environ["TASKS_REDIS_URL"]},
        }
    }
elif APP_ENV == "production":
    TASKS = {
        "default": {
            "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
            "QUEUES": _QUEUES,
            "OPTIONS": {"DATABASE": "default", "RESULT_RETENTION": 14 * 86400},
        }
    }
else:
    TASKS = {
        "default": {
            "BACKEND": "taskyard.contrib.django.backends.ImmediateBackend",
            "QUEUES": _QUEUES,
        }
    }
