"""Backend classes for ``settings.TASKS``: genuine Django tasks backends over taskyard's.

They subclass the ``BaseTaskBackend`` of Django's own ``django.tasks`` (Django >= 6) or of the
``django_tasks`` backport (Django 5.2) and delegate to the taskyard backend configured under the
same alias. Django's ``@task`` gets taskyard's options (``retries``, ``timeout``, ``depends_on``,
``limit``, ``qualifiers``...) through ``task_class``.

Enqueue timing is Django's: a task is enqueued when ``enqueue()`` is called (the Immediate
backend runs it then, inline, inside the caller's transaction). The Database backend on the
caller's database inserts the row inside the caller's transaction. ``OPTIONS["ENQUEUE_ON_COMMIT"]
= True`` (opt-in) makes the other backends wait for the commit of a transaction on the
``default`` database (``transaction.on_commit``): nothing is enqueued on rollback, but nothing
runs inside a ``TestCase`` unless its on-commit callbacks are executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from taskyard.backends.base import Backend as CoreBackend
from taskyard.backends.base import preassigned_result_id
from taskyard.contrib.django.compat import api_of, primary
from taskyard.contrib.django.conversion import adapt, task_class_for, to_core, to_django
from taskyard.contrib.django.settings import ensure_configured
from taskyard.exceptions import InvalidTask as CoreInvalidTask
from taskyard.exceptions import InvalidTaskArguments
from taskyard.tasks import registry as _registry
from taskyard.tasks.results import TaskResult as CoreResult
from taskyard.tasks.results import new_id

_API = primary()

# Workers and @cron accept Django's task objects once these backends exist (also without the
# app installed: then `manage.py check` reports taskyard.E005 instead of an import error).
_registry.add_adapter(adapt)


class TaskyardBackendMixin:
    """What every taskyard Django backend shares."""

    #: dotted path of the taskyard backend class this one delegates to
    core_backend: ClassVar[str]
    alias: str
    options: dict[str, Any]

    @property
    def core(self) -> CoreBackend:
        """The taskyard backend behind this alias (for taskyard's extended API)."""
        ensure_configured()
        from taskyard.config import backends

        return backends[self.alias]

    def taskyard_result(self, result_id: str) -> CoreResult[Any]:
        """The full taskyard result (``progress``, ``cancel()``, ``wait()``, CANCELLED...)."""
        return self.core.get_result(result_id)


def _build(name: str, core_path: str, flags: dict[str, bool]) -> type:
    base = _API.BaseTaskBackend

    class DjangoBackend(TaskyardBackendMixin, base):  # type: ignore[misc, valid-type]
        core_backend = core_path
        task_class = task_class_for(_API)
        supports_defer = flags["defer"]
        supports_async_task = flags["async"]
        supports_get_result = flags["get_result"]
        supports_priority = flags["priority"]

        def __init__(self, alias: str, params: dict[str, Any]) -> None:
            super().__init__(alias, params)
            self.enqueue_on_commit = bool(self.options.get("ENQUEUE_ON_COMMIT", False))
            self.id_function: Any = self.options.get("id_function")  # django-tasks-db's option

        def validate_task(self, task: Any) -> None:
            try:  # taskyard's checks first: their messages name the backend and the task
                self.core.validate_task(to_core(task))
            except CoreInvalidTask as exc:
                raise api_of(task).InvalidTask(str(exc)) from exc
            super().validate_task(task)

        def enqueue(self, task: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
            self.validate_task(task)
            core_task = to_core(task)
            commit_alias = self._deferral_alias()
            if commit_alias is not None:
                return self._enqueue_on_commit(task, core_task, args, kwargs, commit_alias)
            try:
                with preassigned_result_id(self._new_id()):
                    result = self.core.enqueue(core_task, args, kwargs)
            except InvalidTaskArguments:
                raise  # a TypeError, as Django's own backends raise for non-JSON arguments
            except CoreInvalidTask as exc:
                raise api_of(task).InvalidTask(str(exc)) from exc
            return to_django(result, api_of(task), task)

        def _new_id(self) -> str:
            """A fresh result id: UUIDv7, or ``OPTIONS["id_function"]``'s (a UUID)."""
            if self.id_function is None:
                return new_id()
            function = self.id_function
            if isinstance(function, str):
                from django.utils.module_loading import import_string

                function = self.id_function = import_string(function)
            import uuid

            value = function()
            try:
                return str(uuid.UUID(str(value)))
            except ValueError:
                raise _API.InvalidTask(
                    f"OPTIONS['id_function'] of backend {self.alias!r} returned {value!r}: "
                    "taskyard result ids must be UUIDs"
                ) from None

        def _deferral_alias(self) -> str | None:
            """The database whose commit the enqueue waits for, if it must wait."""
            if not self.enqueue_on_commit:
                return None
            from django.db import DEFAULT_DB_ALIAS, connections

            own = getattr(self.core, "database", None)
            if own == DEFAULT_DB_ALIAS:
                return None  # same database: the INSERT is part of the caller's transaction
            if (
                DEFAULT_DB_ALIAS in connections.settings
                and connections[DEFAULT_DB_ALIAS].in_atomic_block
            ):
                return DEFAULT_DB_ALIAS
            return None

        def _enqueue_on_commit(
            self,
            task: Any,
            core_task: Any,
            args: Sequence[Any],
            kwargs: dict[str, Any],
            alias: str,
        ) -> Any:
            from django.db import transaction

            core = self.core
            with preassigned_result_id(self._new_id()):
                pending = core.new_result(core_task, args, kwargs)  # checks the arguments now
            result_id = pending.id

            def enqueue_now() -> None:
                with preassigned_result_id(result_id):
                    core.enqueue(core_task, pending.args, pending.kwargs)

            transaction.on_commit(enqueue_now, using=alias)
            return to_django(pending, api_of(task), task)

        def get_result(self, result_id: str) -> Any:
            try:
                return to_django(self.core.get_result(result_id), _API)
            except Exception as exc:
                from taskyard.exceptions import TaskResultDoesNotExist

                if isinstance(exc, TaskResultDoesNotExist):
                    raise _API.exceptions.TaskResultDoesNotExist(str(exc)) from exc
                raise

        def check(self, **kwargs: Any) -> Any:
            # Django's own tasks check calls this for every alias; with taskyard's app
            # installed, taskyard.contrib.django.checks covers the rest.
            from taskyard.contrib.django.checks import check_app_installed

            return check_app_installed(self.alias)

    DjangoBackend.__name__ = DjangoBackend.__qualname__ = name
    DjangoBackend.__module__ = __name__
    return DjangoBackend


def _flags(core: type[CoreBackend]) -> dict[str, bool]:
    return {
        "defer": core.supports_defer,
        "async": core.supports_async_task,
        "get_result": core.supports_get_result,
        "priority": core.supports_priority,
    }


def _core(path: str) -> type[CoreBackend]:
    from django.utils.module_loading import import_string

    cls: type[CoreBackend] = import_string(path)
    return cls


_IMMEDIATE = "taskyard.backends.immediate.ImmediateBackend"
_DUMMY = "taskyard.backends.dummy.DummyBackend"
_THREADPOOL = "taskyard.backends.threadpool.ThreadPoolBackend"
_DATABASE = "taskyard.contrib.django.database.DjangoDatabaseBackend"
_REDIS = "taskyard.backends.redis.RedisBackend"

ImmediateBackend = _build("ImmediateBackend", _IMMEDIATE, _flags(_core(_IMMEDIATE)))
ThreadPoolBackend = _build("ThreadPoolBackend", _THREADPOOL, _flags(_core(_THREADPOOL)))
DatabaseBackend = _build("DatabaseBackend", _DATABASE, _flags(_core(_DATABASE)))
RedisBackend = _build(
    "RedisBackend",
    _REDIS,
    {"defer": True, "async": True, "get_result": True, "priority": True},
)
_DummyBase = _build("DummyBackend", _DUMMY, _flags(_core(_DUMMY)))


class DummyBackend(_DummyBase):  # type: ignore[misc, valid-type]
    """Records enqueued tasks, runs nothing (for tests). ``results`` and ``clear()`` as in
    Django's DummyBackend; ``taskyard.testing.run_enqueued()`` runs them."""

    @property
    def results(self) -> list[Any]:
        return [to_django(r, _API) for r in self.core.results]

    def clear(self) -> None:
        self.core.clear()


DummyBackend.__module__ = __name__

__all__ = [
    "DatabaseBackend",
    "DummyBackend",
    "ImmediateBackend",
    "RedisBackend",
    "TaskyardBackendMixin",
    "ThreadPoolBackend",
]
