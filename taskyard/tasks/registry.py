"""Finding tasks by module path, safely.

Workers receive a task as a module path (``"myapp.tasks.send_email"``) read from stored data.
They accept the attribute only if it is a real task object: a taskyard ``Task``, or a foreign
task type (Django's) that an integration has registered an adapter for. A path that names any
other callable (``os.system``) is refused with ``TaskNotFound``; nothing is called.

Stored data never decides what gets imported. ``resolve()`` finds tasks in modules already
imported (the deployment declares its task modules: ``--import``, the settings' ``IMPORTS``,
Django apps' ``tasks`` modules, all imported at start through ``import_declared()``) and imports
a module on demand only when its name falls under an allowed prefix (``allow_imports()``:
``--allow-import``, ``ALLOWED_IMPORTS``, ``$TASKYARD_ALLOWED_IMPORTS``). Anything raised while
importing, ``SystemExit`` included, becomes ``TaskNotFound``. Readers of results use
``lookup()``, which imports nothing.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from taskyard.exceptions import InvalidTask
from taskyard.tasks.task import Task

_lock = threading.Lock()
_tasks: dict[str, Task[Any, Any]] = {}
_adapters: list[Callable[[object], Task[Any, Any] | None]] = []
_allowed: tuple[str, ...] = ()
_env_read = False
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class TaskNotFound(InvalidTask):
    """A module path does not lead to a task object (or may not be imported here)."""


def class_path(cls: type) -> str:
    """``module.QualifiedName`` of a class (how exception classes are stored)."""
    return f"{cls.__module__}.{cls.__qualname__}"


# -- what may be imported ---------------------------------------------------------------------


def allow_imports(prefixes: Iterable[str]) -> None:
    """Let workers import modules named by stored data when the name is one of ``prefixes`` or
    lies below one (``"myapp"`` allows ``myapp.tasks`` and ``myapp.billing.tasks``)."""
    global _allowed
    cleaned = []
    for given in prefixes:
        prefix = str(given).strip().rstrip(".")
        if not prefix:
            continue
        if not _MODULE_NAME.match(prefix):
            raise InvalidTask(f"allowed import prefix {given!r} is not a module name")
        cleaned.append(prefix)
    with _lock:
        _allowed = tuple(dict.fromkeys((*_allowed, *cleaned)))


def allowed_imports() -> tuple[str, ...]:
    """The module prefixes ``resolve()`` may import on demand: those given to
    ``allow_imports()`` and, in every process, ``$TASKYARD_ALLOWED_IMPORTS`` (comma-separated;
    how a plain ``rq worker`` running taskyard jobs is told)."""
    global _env_read
    if not _env_read:
        _env_read = True
        allow_imports(os.environ.get("TASKYARD_ALLOWED_IMPORTS", "").split(","))
    return _allowed


def reset_allowed_imports() -> None:
    """Forget every allowed prefix; the environment variable is read again (tests)."""
    global _allowed, _env_read
    with _lock:
        _allowed = ()
        _env_read = False


def may_import(module_name: str) -> bool:
    """Whether stored data may make this process import ``module_name``."""
    return any(module_name == p or module_name.startswith(p + ".") for p in allowed_imports())


def _guarded_import(module_name: str, what: str) -> ModuleType:
    """Import a module; anything it raises (``SystemExit`` too) becomes ``TaskNotFound``."""
    try:
        return importlib.import_module(module_name)
    except BaseException as exc:  # a module may raise anything on import, even SystemExit
        if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is (
            threading.main_thread()
        ):
            raise
        raise TaskNotFound(
            f"cannot import module {module_name!r} for {what}: {type(exc).__name__}: {exc}"
        ) from None


def import_declared(module_name: str) -> ModuleType:
    """Import a module the deployment declares (``--import``, ``IMPORTS``, an app's tasks
    module). Raises ``TaskNotFound`` naming the module if it cannot be imported."""
    if not isinstance(module_name, str) or not _MODULE_NAME.match(module_name):
        raise TaskNotFound(f"{module_name!r} is not a module name")
    return _guarded_import(module_name, "the declared imports")


def _module_for(module_name: str, what: str) -> ModuleType:
    """The module named by stored data: already imported, or importable under the allow-list."""
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    if not _MODULE_NAME.match(module_name):
        raise TaskNotFound(f"{what} names {module_name!r}, which is not a module name")
    if not may_import(module_name):
        raise TaskNotFound(
            f"{what} is in module {module_name!r}, which this process has not imported and may "
            f"not import on demand: declare it (taskyard worker --import {module_name}, the "
            "settings' IMPORTS, or a Django app's tasks module) or allow its package "
            f"(--allow-import {module_name.partition('.')[0]}, ALLOWED_IMPORTS)"
        )
    return _guarded_import(module_name, what)


def import_exception(path: str) -> type[BaseException]:
    """The exception class a stored ``retry_on`` entry names; ``InvalidTask`` otherwise.

    Follows ``resolve()``'s rule: the module must be imported already or allowed."""
    module_name, _, name = str(path).rpartition(".")
    try:
        found = getattr(_module_for(module_name, f"retry_on entry {path!r}"), name)
    except TaskNotFound as exc:
        raise InvalidTask(f"retry_on names {path!r}, which cannot be used: {exc}") from None
    except AttributeError:
        raise InvalidTask(f"retry_on names {path!r}, which does not exist") from None
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
    """The task declared at ``module_path`` (for running it).

    The module must have been imported already or fall under an allowed prefix (see the module
    docstring). Raises ``TaskNotFound`` (an ``InvalidTask``) with the reason when it may not or
    cannot be imported, the attribute is missing, or it is not a task.
    """
    found = _tasks.get(module_path)
    if found is not None:
        return found
    if not isinstance(module_path, str) or "." not in module_path:
        raise TaskNotFound(f"{module_path!r} is not a module path of the form 'module.function'")
    module_name, _, attr = module_path.rpartition(".")
    module = _module_for(module_name, f"task {module_path!r}")
    found = _tasks.get(module_path)
    if found is not None:
        return found
    obj = getattr(module, attr, None)
    if obj is None:
        raise TaskNotFound(f"module {module_name!r} has no attribute {attr!r}")
    adapted = as_task(obj)
    if adapted is None:
        raise TaskNotFound(
            f"{module_path!r} is a {type(obj).__name__}, not a task: only functions declared "
            "with @task can be run by a worker"
        )
    return adapted


def import_task(module_path: str) -> Task[Any, Any]:
    """The task at ``module_path``, importing its module as a declared import (for paths the
    deployment's own configuration names, such as cron schedules in settings)."""
    if isinstance(module_path, str) and "." in module_path and module_path not in _tasks:
        import_declared(module_path.rpartition(".")[0])
    return resolve(module_path)


def lookup(module_path: str) -> Task[Any, Any] | None:
    """The task declared under ``module_path`` in this process, if any; imports nothing
    (for readers of results: admin, ``get_result``, ``taskyard status``)."""
    found = _tasks.get(module_path)
    if found is not None or not _adapters or not isinstance(module_path, str):
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
