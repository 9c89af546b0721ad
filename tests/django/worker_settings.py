"""Settings of a separate ``manage.py db_worker`` process (tests/django/test_worker_process.py):
the test project's, on the PostgreSQL database named by ``TASKYARD_WORKER_DB_URL``, with
persistent connections and Django's health checks (as production workers run), e-mails written
to ``TASKYARD_EMAIL_DIR`` and an ``application_name`` that lets the test find its sessions."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from tests.django.settings import *  # noqa: F403

_url = urlsplit(os.environ["TASKYARD_WORKER_DB_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname,
        "PORT": _url.port or 5432,
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "application_name": os.environ.get("TASKYARD_APP_NAME", "taskyard-tests"),
            "connect_timeout": 3,
        },
    }
}
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("TASKYARD_EMAIL_DIR", "/tmp/taskyard-emails")
