"""System checks (``manage.py check``) for the ``TASKS`` setting."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_tasks_setting(app_configs: Any = None, **kwargs: Any) -> Iterable[checks.CheckMessage]:
    """Every ``TASKS`` entry names an importable backend; taskyard entries have valid options
    and, for the Database backend, an existing PostgreSQL or SQLite database alias."""
    from django.db import connections
    from django.utils.module_loading import import_string

    from taskyard.config import BackendHandler
    from taskyard.contrib.django.backends import TaskyardBackendMixin
    from taskyard.contrib.django.settings import taskyard_entries
    from taskyard.exceptions import InvalidTaskBackend

    tasks = getattr(settings, "TASKS", None) or {}
    messages: list[checks.CheckMessage] = []
    ours = 0
    for alias, params in tasks.items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        try:
            cls = import_string(str(path))
        except (ImportError, TypeError) as exc:
            messages.append(
                checks.Error(
                    f"TASKS[{alias!r}]['BACKEND'] = {path!r} cannot be imported: {exc}",
                    hint="Use e.g. 'taskyard.contrib.django.backends.DatabaseBackend'.",
                    id="taskyard.E001",
                )
            )
            continue
        if not (isinstance(cls, type) and issubclass(cls, TaskyardBackendMixin)):
            continue
        ours += 1
        try:
            BackendHandler().configure(taskyard_entries({alias: params}), require_default=False)
        except InvalidTaskBackend as exc:
            messages.append(checks.Error(f"TASKS[{alias!r}]: {exc}", id="taskyard.E002"))
            continue
        if cls.core_backend.endswith("DjangoDatabaseBackend"):
            database = (params.get("OPTIONS") or {}).get("DATABASE", "default")
            if database not in connections.settings:
                messages.append(
                    checks.Error(
                        f"TASKS[{alias!r}]['OPTIONS']['DATABASE'] is {database!r}, which is not a "
                        f"database alias in settings.DATABASES ({', '.join(connections.settings)})",
                        id="taskyard.E003",
                    )
                )
            elif connections[database].vendor not in ("postgresql", "sqlite"):
                messages.append(
                    checks.Error(
                        f"TASKS[{alias!r}]: database {database!r} is "
                        f"{connections[database].vendor}; use PostgreSQL or SQLite",
                        id="taskyard.E004",
                    )
                )
    if ours and not settings.USE_TZ:
        messages.append(
            checks.Warning(
                "USE_TZ is False: taskyard stores times in UTC, which the admin will show as local "
                "times",
                id="taskyard.W001",
            )
        )
    return messages
