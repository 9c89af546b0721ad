"""The Django app: wires taskyard's hooks to Django's signals, brackets task runs with Django's
connection housekeeping and lets workers run Django's task objects."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from django.apps import AppConfig


class TaskyardConfig(AppConfig):
    name = "taskyard.contrib.django"
    label = "taskyard"
    verbose_name = "Tasks (taskyard)"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from taskyard.config import backends
        from taskyard.contrib.django import checks, connections, settings
        from taskyard.contrib.django.conversion import adapt
        from taskyard.tasks import hooks, registry

        del checks  # registers the system checks
        registry.add_adapter(adapt)
        registry.allow_imports(_declared_task_modules())
        backends.configure_default = settings.ensure_configured
        setting_changed.connect(settings.reset, dispatch_uid="taskyard-tasks-setting")
        connections.install()
        hooks.task_enqueued.connect(_bridge("task_enqueued"))
        hooks.task_started.connect(_bridge("task_started"))
        hooks.task_finished.connect(_bridge("task_finished"))
        _quiet_secondary_loggers()


def _declared_task_modules() -> list[str]:
    """What a worker under Django may import on demand: each installed app's ``tasks`` module
    (Django's convention, also what the commands import at start) and the packages in
    ``settings.TASKYARD_ALLOWED_IMPORTS``. Stored tasks never make it import anything else."""
    from django.apps import apps
    from django.conf import settings

    extra = getattr(settings, "TASKYARD_ALLOWED_IMPORTS", None) or []
    return [f"{config.name}.tasks" for config in apps.get_app_configs()] + [str(p) for p in extra]


_bridges: dict[str, Any] = {}

#: True while the bridge sends the signal of a secondary tasks API (the ``django_tasks``
#: backport on Django 6): its built-in log receivers repeat what ``django.tasks`` logged.
_secondary_send: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "taskyard_secondary_send", default=False
)


def _bridge(name: str) -> Any:
    """A hook receiver that sends Django's signal of the same name, for each tasks API.

    Django's own log receivers then write one line per state change (with the exception of a
    FAILED task: the hook runs while it is being handled). When both ``django.tasks`` and the
    backport are installed, both signals are sent (receivers may listen to either) but only
    the primary API's logger writes the line."""
    if name in _bridges:
        return _bridges[name]

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        from taskyard.contrib.django.compat import apis
        from taskyard.contrib.django.conversion import to_django

        for index, api in enumerate(apis()):
            signal = getattr(api.signals, name)
            if not signal.has_listeners():
                continue
            token = _secondary_send.set(index > 0)
            try:
                signal.send(sender=sender, task_result=to_django(task_result, api))
            finally:
                _secondary_send.reset(token)

    _bridges[name] = receiver
    return receiver


class _SecondaryAPIFilter(logging.Filter):
    """Drops a secondary tasks API's lifecycle lines for taskyard's tasks (already logged by
    the primary API's logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _secondary_send.get()


def _quiet_secondary_loggers() -> None:
    from taskyard.contrib.django.compat import apis

    for api in apis()[1:]:
        logger = logging.getLogger(api.name)
        if not any(isinstance(f, _SecondaryAPIFilter) for f in logger.filters):
            logger.addFilter(_SecondaryAPIFilter())
