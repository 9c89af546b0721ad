"""Between Django's task objects and taskyard's.

* ``task_class_for(api)``: the ``Task`` subclass taskyard's Django backends hand to Django's
  ``@task`` decorator, so ``@task(retries=3, timeout=60)`` and ``.using(retries=...)`` work.
* ``to_core(django_task)``: the taskyard ``Task`` that runs it.
* ``to_django(core_result)``: a Django ``TaskResult`` for a taskyard result. Django has no
  CANCELLED status: a cancelled task reads as FAILED there, its last error being
  ``taskyard.exceptions.TaskCancelled`` (the full status is on the taskyard result).
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from taskyard.contrib.django.compat import TasksAPI, api_of, apis
from taskyard.tasks.results import TaskResult as CoreResult
from taskyard.tasks.results import TaskResultStatus
from taskyard.tasks.task import DEFAULT_RETRY_ON, EXTENSION_OPTIONS
from taskyard.tasks.task import Task as CoreTask

_EXTENSION_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_backoff": 1.0,
    "retry_backoff_max": 600.0,
    "retry_on": DEFAULT_RETRY_ON,
    "timeout": None,
    "depends_on": None,
    "limit": None,
    "limit_key": None,
    "qualifiers": (),
}


@cache
def task_class_for(api: TasksAPI) -> type:
    """A subclass of ``api``'s ``Task`` carrying taskyard's extension options."""
    base = api.Task

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class TaskyardTask(base):  # type: ignore[misc, valid-type]
        retries: int = 0
        retry_backoff: float = 1.0
        retry_backoff_max: float = 600.0
        retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON
        timeout: float | None = None
        depends_on: str | None = None
        limit: int | None = None
        limit_key: str | None = None
        qualifiers: Any = ()

        def using(
            self,
            *,
            priority: int | None = None,
            queue_name: str | None = None,
            run_after: datetime | timedelta | None = None,
            backend: str | None = None,
            **extensions: Any,
        ) -> Any:
            """Django's ``using()`` plus taskyard's options (``retries``, ``timeout``, ...)."""
            unknown = sorted(set(extensions) - set(EXTENSION_OPTIONS))
            if unknown:
                raise api.InvalidTask(
                    f"unknown task option(s) {', '.join(map(repr, unknown))}; taskyard adds "
                    f"{', '.join(EXTENSION_OPTIONS)}"
                )
            if isinstance(run_after, timedelta):
                run_after = datetime.now(UTC) + run_after
            if "depends_on" in extensions and not isinstance(extensions["depends_on"], str):
                extensions["depends_on"] = getattr(extensions["depends_on"], "id", None)
            copy = base.using(
                self,
                priority=priority,
                queue_name=queue_name,
                run_after=run_after,
                backend=backend,
            )
            return dataclasses.replace(copy, **extensions) if extensions else copy

    TaskyardTask.__qualname__ = TaskyardTask.__name__ = "TaskyardTask"
    TaskyardTask.__module__ = __name__
    return TaskyardTask


def is_django_task(obj: object) -> bool:
    return any(isinstance(obj, api.Task) for api in apis())


_core_cache: dict[int, tuple[Any, CoreTask[Any, Any]]] = {}


def to_core(task: Any) -> CoreTask[Any, Any]:
    """The taskyard ``Task`` for a Django task (cached per task object)."""
    cached = _core_cache.get(id(task))
    if cached is not None and cached[0] is task:
        return cached[1]
    extensions = {
        name: getattr(task, name, default)
        for name, default in _EXTENSION_DEFAULTS.items()
        if getattr(task, name, default) != default
    }
    core: CoreTask[Any, Any] = CoreTask(
        func=task.func,
        priority=int(task.priority),
        backend=task.backend,
        queue_name=task.queue_name,
        run_after=task.run_after,
        takes_context=task.takes_context,
        **extensions,
    )
    if len(_core_cache) > 1024:
        _core_cache.clear()
    _core_cache[id(task)] = (task, core)
    return core


def adapt(obj: object) -> CoreTask[Any, Any] | None:
    """Registry adapter: workers may run functions declared with Django's ``@task``."""
    return to_core(obj) if is_django_task(obj) else None


def django_task_for(core: CoreTask[Any, Any], api: TasksAPI) -> Any:
    """A Django task object for a taskyard task (the declared Django task when there is one)."""
    module_name, _, attr = core.module_path.rpartition(".")
    declared = getattr(sys.modules.get(module_name), attr, None)
    if (
        isinstance(declared, api.Task)
        and declared.backend == core.backend
        and (declared.priority, declared.queue_name, declared.run_after)
        == (core.priority, core.queue_name, core.run_after)
    ):
        return declared
    cls = task_class_for(api)
    fields = {
        "func": core.func,
        "priority": core.priority,
        "backend": core.backend,
        "queue_name": core.queue_name,
        "run_after": core.run_after,
        "takes_context": core.takes_context,
    }
    fields.update({name: getattr(core, name) for name in _EXTENSION_DEFAULTS})
    return _construct_without_validation(cls, fields)


def _construct_without_validation(cls: type, fields: dict[str, Any]) -> Any:
    """Build a frozen dataclass instance without ``__post_init__`` (which validates against
    the backend: a stored result must stay readable even if its options changed since)."""
    obj: Any = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def to_django(result: CoreResult[Any], api: TasksAPI | None = None, task: Any = None) -> Any:
    """A Django ``TaskResult`` (of ``api``, the primary API by default) for a taskyard result."""
    api = api or (api_of(task) if task is not None else apis()[0])
    if task is None:
        task = django_task_for(result.task, api)
    status_enum = api.TaskResultStatus
    status = result.status
    mapped = (
        status_enum.FAILED if status is TaskResultStatus.CANCELLED else status_enum[status.value]
    )
    errors = [
        api.TaskError(exception_class_path=e.exception_class_path, traceback=e.traceback)
        for e in result.errors
    ]
    django_result = api.TaskResult(
        task=task,
        id=result.id,
        status=mapped,
        enqueued_at=result.enqueued_at,
        started_at=result.started_at,
        finished_at=result.finished_at,
        last_attempted_at=result.last_attempted_at,
        args=list(result.args),
        kwargs=dict(result.kwargs),
        backend=result.backend,
        errors=errors,
        worker_ids=list(result.worker_ids),
    )
    object.__setattr__(django_result, "_return_value", result._return_value)
    return django_result
