"""Finding tasks by module path, safely.

Workers receive a task as a module path (``"myapp.tasks.send_email"``). They import the module
and accept the attribute only if it is a real task object: a taskyard ``Task``, or a foreign
task type (Django's) that an integration has registered an adapter for. A path that names any
other callable (``os.system``) is refused with ``TaskNotFound``; nothing is called.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from taskyard.exceptions import InvalidTask
from taskyard.tasks.task import Task

_lock = threading.Lock()
_tasks: dict[str, Task[Any, Any]] = {}
_adapters: list[Callable[[object], Task[Any, Any] | None]] = []


class TaskNotFound(InvalidTask):
    """A module path does not lead to a task object."""


def class_path(cls: type) -> str:
    """``module.QualifiedName`` of a class (how exception classes are stored)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_exception(path: str) -> type[BaseException]:
    """The exception class a stored ``retry_on`` entry names; ``InvalidTask`` otherwise."""
    module_name, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidTask(f"retry_on names {path!r}, which cannot be imported: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise InvalidTask(f"retry_on names {path!r}, which is not an exception class")
    return found


def register(task: Task[Any, Any]) -> None:
    """Remember a declared task under its module path (done by ``@task``)."""
    with _lock:
        _tasks[task.module_path] = task


def registered() -> dict[str, Task[Any, Any]]:
    """A snapshot of every task declared so far, by module path."""
    with _lock:
        return dict(_tasks)


def add_adapter(adapter: Callable[[object], Task[Any, Any] | None]) -> None:
    """Let an integration turn its own task objects into taskyard ``Task`` values.

    ``adapter(obj)`` returns a ``Task`` for objects it recognises and ``None`` otherwise.
    """
    with _lock:
        if adapter not in _adapters:
            _adapters.append(adapter)


def as_task(obj: object) -> Task[Any, Any] | None:
    """``obj`` as a taskyard ``Task`` if it is one (or adapts to one), else ``None``."""
    if isinstance(obj, Task):
        return obj
    for adapter in list(_adapters):
        adapted = adapter(obj)
        if adapted is not None:
            return adapted
    return None


def resolve(module_path: str) -> Task[Any, Any]:
    """Import and return the task declared at ``module_path``.

    Raises ``TaskNotFound`` (an ``InvalidTask``) with the reason when the module cannot be
    imported, the attribute is missing, or it is not a task.
    """
    found = _tasks.get(module_path)
    if found is not None:
        return found
    if not isinstance(module_path, str) or "." not in module_path:
        raise TaskNotFound(f"{module_path!r} is not a module path of the form 'module.function'")
    module_name, _, attr = module_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskNotFound(
            f"cannot import module {module_name!r} for task {module_path!r}: {exc}"
        ) from exc
    found = _tasks.get(module_path)
    if found is not None:
        return found
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise TaskNotFound(f"module {module_name!r} has no attribute {attr!r}") from None
    adapted = as_task(obj)
    if adapted is None:
        raise TaskNotFound(
            f"{module_path!r} is a {type(obj).__name__}, not a task: only functions declared "
            "with @task can be run by a worker"
        )
    return adapted


def declared(module_path: str) -> Task[Any, Any] | None:
    """The task declared under ``module_path`` in this process, if any (imports nothing):
    a taskyard task, or an adapted foreign task of a module already imported."""
    found = _tasks.get(module_path)
    if found is not None or not _adapters:
        return found
    module_name, _, attr = module_path.rpartition(".")
    module = sys.modules.get(module_name)
    return None if module is None else as_task(getattr(module, attr, None))


def _unresolvable(*args: Any, **kwargs: Any) -> None:
    raise TaskNotFound("this task could not be resolved in this process")


def placeholder(module_path: str) -> Task[Any, Any]:
    """A stand-in ``Task`` for a stored result whose task cannot be imported here.

    It carries the stored module path (so results stay readable, e.g. in an admin) and raises
    ``TaskNotFound`` if anyone tries to run it.
    """
    stand_in: Task[Any, Any] = Task(func=_unresolvable)
    object.__setattr__(stand_in, "_module_path", module_path)
    return stand_in
