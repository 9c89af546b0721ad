"""Which Django tasks APIs exist: Django's own ``django.tasks`` (Django >= 6) and/or the
``django_tasks`` backport (Django 5.2). A backend built here serves both when both exist."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class TasksAPI:
    """One tasks API: its modules and classes."""

    name: str  # "django.tasks" or "django_tasks"
    root: ModuleType
    base: ModuleType
    backends_base: ModuleType
    signals: ModuleType
    exceptions: ModuleType

    @property
    def Task(self) -> Any:  # noqa: N802 - the API's class
        return self.base.Task

    @property
    def TaskResult(self) -> Any:  # noqa: N802
        return self.base.TaskResult

    @property
    def TaskError(self) -> Any:  # noqa: N802
        return self.base.TaskError

    @property
    def TaskResultStatus(self) -> Any:  # noqa: N802
        return self.base.TaskResultStatus

    @property
    def InvalidTask(self) -> type[Exception]:  # noqa: N802
        """Django's ``InvalidTask`` (the backport calls it ``InvalidTaskError``)."""
        exceptions = self.exceptions
        found: type[Exception] = getattr(exceptions, "InvalidTask", None) or (
            exceptions.InvalidTaskError
        )
        return found

    @property
    def BaseTaskBackend(self) -> Any:  # noqa: N802
        return self.backends_base.BaseTaskBackend

    @property
    def task_backends(self) -> Any:
        return self.root.task_backends


def _load(name: str) -> TasksAPI | None:
    try:
        root = importlib.import_module(name)
        return TasksAPI(
            name=name,
            root=root,
            base=importlib.import_module(f"{name}.base"),
            backends_base=importlib.import_module(f"{name}.backends.base"),
            signals=importlib.import_module(f"{name}.signals"),
            exceptions=importlib.import_module(f"{name}.exceptions"),
        )
    except ImportError:
        return None


@cache
def apis() -> tuple[TasksAPI, ...]:
    """The tasks APIs installed, the primary first (Django's own when it has one)."""
    found = [api for api in (_load("django.tasks"), _load("django_tasks")) if api is not None]
    if not found:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "taskyard.contrib.django needs Django >= 6.0 (django.tasks) or the django-tasks "
            "backport on Django 5.2: pip install 'taskyard[django]'"
        )
    return tuple(found)


def primary() -> TasksAPI:
    return apis()[0]


def api_of(obj: object) -> TasksAPI:
    """The API a Django task or result object comes from (the primary one if unknown)."""
    module = type(obj).__module__
    for api in apis():
        if module.startswith(api.name + ".") or module == api.name:
            return api
    for api in apis():
        if isinstance(obj, api.Task | api.TaskResult):
            return api
    return primary()
