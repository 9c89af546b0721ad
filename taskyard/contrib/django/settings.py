"""taskyard's own backend handler, configured from ``settings.TASKS``.

Functions declared with taskyard's ``@task`` enqueue through taskyard's handler; those declared
with Django's ``@task`` through Django's, whose backend classes (``backends.py``) delegate to the
same taskyard backend objects. So both kinds of task share one queue, one Dummy result list and
one thread pool per alias. Entries naming other (non-taskyard) backends are left to Django.
"""

from __future__ import annotations

import threading
from typing import Any

from taskyard.config import backends
from taskyard.exceptions import InvalidTaskBackend

#: Options of the Django backend classes that are about Django, not the taskyard backend.
DJANGO_ONLY_OPTIONS = ("ENQUEUE_ON_COMMIT", "id_function")

_lock = threading.Lock()
_configured_from: object = None


def taskyard_entries(tasks_setting: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The taskyard settings equivalent to the taskyard entries of ``settings.TASKS``."""
    from django.utils.module_loading import import_string

    from taskyard.contrib.django.backends import TaskyardBackendMixin

    entries: dict[str, dict[str, Any]] = {}
    for alias, params in tasks_setting.items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        try:
            cls = import_string(path) if isinstance(path, str) else None
        except ImportError:
            continue  # reported by the system checks
        if not (isinstance(cls, type) and issubclass(cls, TaskyardBackendMixin)):
            continue
        options = {
            k: v for k, v in (params.get("OPTIONS") or {}).items() if k not in DJANGO_ONLY_OPTIONS
        }
        entry: dict[str, Any] = {"BACKEND": cls.core_backend, "OPTIONS": options}
        if "QUEUES" in params:
            entry["QUEUES"] = params["QUEUES"]
        entries[alias] = entry
    return entries


def ensure_configured() -> None:
    """Configure taskyard's handler from ``settings.TASKS`` if it changed since last time."""
    global _configured_from
    from django.conf import settings

    current = getattr(settings, "TASKS", None)
    if current is _configured_from and backends._entries is not None:
        return
    with _lock:
        if current is _configured_from and backends._entries is not None:
            return
        entries = taskyard_entries(current or {})
        try:
            backends.configure(entries, require_default=False)
        except InvalidTaskBackend:
            raise
        _configured_from = current


def reset(**kwargs: Any) -> None:
    """``setting_changed`` receiver: TASKS changed (``override_settings``), re-read it."""
    global _configured_from
    if kwargs.get("setting") == "TASKS":
        _configured_from = None
        backends.reset()
