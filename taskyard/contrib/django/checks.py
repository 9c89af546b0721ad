"""System checks (``manage.py check``) for the ``TASKS`` setting and the apps around it.

Each message says which line of the settings to change."""

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
    if ours:
        messages += check_shadowed_commands()
        messages += check_rq_worker_class(tasks)
    if ours and not settings.USE_TZ:
        messages.append(
            checks.Warning(
                "USE_TZ is False: taskyard stores times in UTC, which the admin will show as local "
                "times",
                id="taskyard.W001",
            )
        )
    return messages


APP = "taskyard.contrib.django"
#: Our management commands that other apps also define (django-tasks-db, django-crontask).
COMMANDS = ("db_worker", "prune_db_task_results", "crontask")
WORKER_CLASSES = (
    "taskyard.backends.redis.worker.TaskyardWorker",
    "taskyard.backends.redis.worker.TaskyardSimpleWorker",
)


def check_app_installed(alias: str) -> list[checks.CheckMessage]:
    """A taskyard backend without taskyard's app: no signals, admin, migrations or commands.

    Run by Django's own tasks check (``backend.check()``), which runs without our app."""
    from django.apps import apps

    if apps.is_installed(APP):
        return []
    return [
        checks.Error(
            f"TASKS[{alias!r}] uses a taskyard backend, but {APP!r} is not in INSTALLED_APPS: "
            "Django's task signals stay silent, and taskyard's tables, admin and commands "
            "(db_worker, prune_db_task_results) are missing",
            hint=f'Add "{APP}" to INSTALLED_APPS.',
            id="taskyard.E005",
        )
    ]


def check_shadowed_commands() -> list[checks.CheckMessage]:
    """Another app listed before ours defines one of our commands (``manage.py db_worker``
    would run django-tasks-db's, which refuses taskyard's backends)."""
    from django.core.management import get_commands

    owners = get_commands()
    messages: list[checks.CheckMessage] = []
    for name in COMMANDS:
        owner = owners.get(name)
        if owner is None or owner == APP:
            continue
        messages.append(
            checks.Error(
                f"`manage.py {name}` runs {owner!r}'s command, not taskyard's: {owner!r} comes "
                f"before {APP!r} in INSTALLED_APPS",
                hint=f'Remove "{owner}" from INSTALLED_APPS (once its queue is drained), or '
                f'move "{APP}" above it.',
                id="taskyard.E006",
            )
        )
    return messages


def check_rq_worker_class(tasks: dict[str, Any]) -> list[checks.CheckMessage]:
    """django-rq's ``rqworker`` with taskyard's Redis backend needs a worker class that reads
    taskyard's JSON jobs (its default worker unpickles them and fails every job)."""
    from django.apps import apps
    from django.utils.module_loading import import_string

    from taskyard.contrib.django.backends import TaskyardBackendMixin

    if not apps.is_installed("django_rq"):
        return []
    redis_aliases = []
    for alias, params in tasks.items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        try:
            cls = import_string(str(path))
        except ImportError:
            continue
        if (
            isinstance(cls, type)
            and issubclass(cls, TaskyardBackendMixin)
            and cls.core_backend.startswith("taskyard.backends.redis")
        ):
            redis_aliases.append(alias)
    if not redis_aliases:
        return []
    configured = (getattr(settings, "RQ", None) or {}).get("WORKER_CLASS")
    ok = False
    if configured:
        try:
            worker = import_string(configured) if isinstance(configured, str) else configured
            ok = isinstance(worker, type) and issubclass(
                worker, tuple(import_string(p) for p in WORKER_CLASSES)
            )
        except ImportError:
            ok = False
    if ok:
        return []
    return [
        checks.Error(
            f"django-rq is installed and TASKS[{redis_aliases[0]!r}] is taskyard's Redis "
            f"backend, but RQ['WORKER_CLASS'] is {configured!r}: `manage.py rqworker` would "
            "fail every taskyard job (UnpicklingError)",
            hint=f'Set RQ = {{"WORKER_CLASS": "{WORKER_CLASSES[0]}"}} (or '
            f'"{WORKER_CLASSES[1]}") in your settings.',
            id="taskyard.E007",
        )
    ]
