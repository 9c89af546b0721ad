"""The Django app: wires taskyard's hooks to Django's signals and lets workers run Django's
task objects."""

from __future__ import annotations

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
        from taskyard.contrib.django import checks, settings
        from taskyard.contrib.django.conversion import adapt
        from taskyard.tasks import hooks, registry

        del checks  # registers the system checks
        registry.add_adapter(adapt)
        backends.configure_default = settings.ensure_configured
        setting_changed.connect(settings.reset, dispatch_uid="taskyard-tasks-setting")
        hooks.task_enqueued.connect(_bridge("task_enqueued"))
        hooks.task_started.connect(_bridge("task_started"))
        hooks.task_finished.connect(_bridge("task_finished"))


_bridges: dict[str, Any] = {}


def _bridge(name: str) -> Any:
    """A hook receiver that sends Django's signal of the same name (for each tasks API)."""
    if name in _bridges:
        return _bridges[name]

    def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
        from taskyard.contrib.django.compat import apis
        from taskyard.contrib.django.conversion import to_django

        for api in apis():
            signal = getattr(api.signals, name)
            if signal.has_listeners():
                signal.send(sender=sender, task_result=to_django(task_result, api))

    _bridges[name] = receiver
    return receiver
