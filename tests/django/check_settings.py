"""Settings with a mistake for ``manage.py check`` (tests/django/test_checks.py), picked by
``TASKYARD_CHECK_CASE``: ``no_app`` (a taskyard backend without taskyard's app), ``shadowed``
(an app defining db_worker listed before ours), ``rq`` (django-rq without taskyard's worker
class) or ``ok``."""

from __future__ import annotations

import os

import django

SECRET_KEY = "taskyard-check-tests"
USE_TZ = True
ROOT_URLCONF = "tests.django.check_urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
# the alerting app's receivers import its tasks, and so Django's tasks framework (as in a real
# project; Django 6 registers its tasks check when django.tasks is imported)
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "taskyard.contrib.django",
    "tests.django.alerting",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(0, "django_tasks")
TASKS = {
    "default": {
        "BACKEND": "taskyard.contrib.django.backends.DatabaseBackend",
        "QUEUES": ["default", "emails"],
    }
}
RQ: dict[str, str] = {"WORKER_CLASS": "taskyard.backends.redis.worker.TaskyardWorker"}

CASE = os.environ.get("TASKYARD_CHECK_CASE", "ok")
if CASE == "no_app":
    INSTALLED_APPS.remove("taskyard.contrib.django")
elif CASE == "shadowed":
    INSTALLED_APPS.insert(INSTALLED_APPS.index("taskyard.contrib.django"), "tests.django.shadowing")
elif CASE in ("rq", "rq_ok"):
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:6379/1"}}
    TASKS["redis"] = {
        "BACKEND": "taskyard.contrib.django.backends.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:6379/1"},
    }
    if CASE == "rq":
        RQ = {}
