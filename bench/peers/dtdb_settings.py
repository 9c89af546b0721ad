"""Django settings for the django-tasks-db peer in the database benchmark."""

import os
from urllib.parse import urlsplit

_url = urlsplit(
    os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/taskyard_bench")
)

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/") or "test",
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": _url.port or 5432,
    }
}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
LOGGING_CONFIG = None
