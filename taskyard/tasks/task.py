"""The ``Task`` value and the ``@task`` decorator."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload

from taskyard.exceptions import InvalidTask, TaskResultMismatch, TaskTimeout
from taskyard.tasks.limits import (
    MAX_LIMIT,
    MAX_RETRIES,
    name_problem,
    seconds_problem,
    text_problem,
)
from taskyard.tasks.serialization import normalize_arguments

if TYPE_CHECKING:
    from taskyard.backends.base import Backend
    from taskyard.tasks.context import TaskContext
    from taskyard.tasks.results import TaskResult

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_BACKEND_ALIAS = "default"
DEFAULT_QUEUE_NAME = "default"
DEFAULT_PRIORITY = 0
MIN_PRIORITY = -100
MAX_PRIORITY = 100
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (Exception, TaskTimeout)

#: Options every ``Task`` accepts in ``@task(...)`` and ``using(...)`` beyond Django's own.
EXTENSION_OPTIONS = (
    "retries",
    "retry_backoff",
    "retry_backoff_max",
    "retry_on",
    "timeout",
    "depends_on",
    "limit",
    "limit_key",
    "qualifiers",
)
_DJANGO_OPTIONS = ("priority", "queue_name", "backend", "run_after")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def compute_module_path(func: Callable[..., Any]) -> str:
    """``module.qualname`` of a function; a script's ``__main__`` is named by its real module."""
    module = func.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}.{func.__qualname__}"


def is_module_level_function(func: object) -> bool:
    """True for a plain function defined at the top level of a module (not a lambda)."""
    return (
        inspect.isfunction(func)
        and "<locals>" not in func.__qualname__
        and "." not in func.__qualname__
        and func.__name__ != "<lambda>"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Task(Generic[P, T]):
    """A function declared as a task, with the options it is enqueued with.

    Immutable: ``using(...)`` returns a modified copy. Create one with ``@task``.
    """

    func: Callable[..., Any]
    priority: int = DEFAULT_PRIORITY
    backend: str = DEFAULT_BACKEND_ALIAS
    queue_name: str = DEFAULT_QUEUE_NAME
    run_after: datetime | None = None
    takes_context: bool = False
    # taskyard extensions
    retries: int = 0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 600.0
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON
    timeout: float | None = None
    depends_on: str | None = None
    limit: int | None = None
    limit_key: str | None = None
    qualifiers: tuple[tuple[str, str], ...] = ()
    # derived once, not part of equality
    _module_path: str = field(init=False, compare=False, repr=False, default="")
    _checked_by: object = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_module_path", compute_module_path(self.func))
        where = self._module_path
        if not _whole(self.priority) or not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise InvalidTask(
                f"priority of {where} must be a whole number between {MIN_PRIORITY} and "
                f"{MAX_PRIORITY}, got {self.priority!r} ({type(self.priority).__name__})"
            )
        if not isinstance(self.queue_name, str) or not self.queue_name:
            raise InvalidTask(
                f"queue_name of {where} must be a non-empty string, got {self.queue_name!r}"
            )
        _check_name("queue_name", self.queue_name, where)
        if not isinstance(self.backend, str) or not self.backend:
            raise InvalidTask(f"backend of {where} must be an alias string, got {self.backend!r}")
        _check_name("backend", self.backend, where)
        if self.run_after is not None:
            if not isinstance(self.run_after, datetime):
                raise InvalidTask(
                    f"run_after of {where} must be an aware datetime or a timedelta, "
                    f"got {type(self.run_after).__name__}"
                )
            if self.run_after.tzinfo is None or self.run_after.utcoffset() is None:
                raise InvalidTask(
                    f"run_after of {where} is a naive datetime ({self.run_after.isoformat()}): "
                    "pass an aware datetime (datetime.now(timezone.utc) + ...) or a timedelta"
                )
        if not _whole(self.retries) or not 0 <= self.retries <= MAX_RETRIES:
            raise InvalidTask(
                f"retries of {where} must be a whole number from 0 to {MAX_RETRIES}, "
                f"got {self.retries!r}"
            )
        for name in ("retry_backoff", "retry_backoff_max"):
            value = getattr(self, name)
            problem = seconds_problem(value, allow_zero=True)
            if problem:
                raise InvalidTask(f"{name} of {where} {problem}, got {value!r}")
        retry_on = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        if not isinstance(retry_on, tuple | list) or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in retry_on
        ):
            raise InvalidTask(
                f"retry_on of {where} must be an exception class or a tuple of them, "
                f"got {self.retry_on!r}"
            )
        set_(self, "retry_on", tuple(retry_on))
        if self.timeout is not None:
            problem = seconds_problem(self.timeout, allow_zero=False)
            if problem:
                raise InvalidTask(
                    f"timeout of {where} {problem}, got {self.timeout!r} (None: no timeout)"
                )
        if self.depends_on is not None and (
            not isinstance(self.depends_on, str) or not self.depends_on
        ):
            raise InvalidTask(
                f"depends_on of {where} must be a TaskResult or a result id, "
                f"got {self.depends_on!r}"
            )
        if self.depends_on is not None:
            _check_name("depends_on", self.depends_on, where, length=False)
        if self.limit is not None and (not _whole(self.limit) or not 1 <= self.limit <= MAX_LIMIT):
            raise InvalidTask(
                f"limit of {where} must be a whole number from 1 to {MAX_LIMIT} or None, "
                f"got {self.limit!r}"
            )
        if self.limit_key is not None:
            if not isinstance(self.limit_key, str) or not self.limit_key:
                raise InvalidTask(
                    f"limit_key of {where} must be a non-empty string, got {self.limit_key!r}"
                )
            _check_name("limit_key", self.limit_key, where, length=False)
            if self.limit is None:
                raise InvalidTask(f"limit_key of {where} is set but limit is not")
        set_(self, "qualifiers", _normalize_qualifiers(self.qualifiers, where))

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The function's name."""
        return self.func.__name__

    @property
    def module_path(self) -> str:
        """``module.function``: how workers find the task."""
        return self._module_path

    @property
    def effective_limit_key(self) -> str | None:
        """The key ``limit`` counts under: ``limit_key``, or the module path by default."""
        if self.limit is None:
            return None
        return self.limit_key or self._module_path

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    # -- copies ---------------------------------------------------------------------------

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | timedelta | None = None,
        backend: str | None = None,
        **extensions: Any,
    ) -> Task[P, T]:
        """Return a copy with some options changed.

        ``run_after`` may be an aware datetime or a ``timedelta`` from now. ``depends_on``
        takes a ``TaskResult`` or a result id. Unknown option names raise ``InvalidTask``.
        """
        changes: dict[str, Any] = {}
        if priority is not None:
            changes["priority"] = priority
        if queue_name is not None:
            changes["queue_name"] = queue_name
        if run_after is not None:
            if isinstance(run_after, timedelta):
                try:
                    run_after = datetime.now(UTC) + run_after
                except OverflowError:
                    raise InvalidTask(
                        f"run_after of {self._module_path}: {run_after!r} from now is past the "
                        "year 9999"
                    ) from None
            changes["run_after"] = run_after
        if backend is not None:
            changes["backend"] = backend
        _check_extension_names(extensions, self._module_path, allow_depends_on=True)
        if "depends_on" in extensions:
            extensions["depends_on"] = _result_id(extensions["depends_on"])
        changes.update(extensions)
        return replace(self, **changes)

    # -- enqueue and results ----------------------------------------------------------------

    def get_backend(self) -> Backend:
        """The backend this task enqueues to (looked up through the configured handler)."""
        from taskyard.config import backends

        return backends[self.backend]

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Queue the task to run with these (JSON) arguments; return its ``TaskResult``."""
        return self.get_backend().enqueue(self, args, kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskResult[T]:
        """Async ``enqueue()``."""
        return await self.get_backend().aenqueue(self, args, kwargs)

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> PreparedCall:
        """A checked call for ``enqueue_many()``; the arguments are normalised now."""
        norm_args, norm_kwargs = normalize_arguments(args, kwargs, self._module_path)
        return PreparedCall(self, norm_args, norm_kwargs)

    def get_result(self, result_id: str) -> TaskResult[T]:
        """The result with this id; ``TaskResultMismatch`` if it belongs to another task."""
        return self._check_result(self.get_backend().get_result(result_id))

    async def aget_result(self, result_id: str) -> TaskResult[T]:
        """Async ``get_result()``."""
        return self._check_result(await self.get_backend().aget_result(result_id))

    def _check_result(self, result: TaskResult[Any]) -> TaskResult[T]:
        if result.task.module_path != self._module_path:
            raise TaskResultMismatch(
                f"result {result.id} belongs to {result.task.module_path}, not {self._module_path}"
            )
        return result

    # -- calling directly ---------------------------------------------------------------------

    def call(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the function now, in this thread (an async function runs to completion)."""
        if self.is_async:
            value: T = run_coroutine(self.func(*args, **kwargs))
            return value
        value = self.func(*args, **kwargs)
        return value

    async def acall(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the function now from async code (a sync function runs in a thread)."""
        if self.is_async:
            value: T = await self.func(*args, **kwargs)
            return value
        value = await asyncio.to_thread(self.func, *args, **kwargs)
        return value


def run_coroutine(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""

    async def main() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # A loop is running in this thread: run the coroutine on a fresh loop in another thread.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A task plus normalised arguments, ready for ``enqueue_many()``."""

    task: Task[Any, Any]
    args: list[Any]
    kwargs: dict[str, Any]


def enqueue_many(calls: Iterable[PreparedCall]) -> list[TaskResult[Any]]:
    """Enqueue many prepared calls, in as few round trips as each backend allows.

    ``enqueue_many(send.prepare(addr) for addr in addresses)``. Results come back in order.
    """
    from taskyard.config import backends

    items = list(calls)
    by_alias: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_alias.setdefault(item.task.backend, []).append(index)
    results: list[TaskResult[Any] | None] = [None] * len(items)
    for alias, indexes in by_alias.items():
        done = backends[alias].enqueue_many([items[i] for i in indexes])
        for i, result in zip(indexes, done, strict=True):
            results[i] = result
    return [r for r in results if r is not None]


def _result_id(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    result_id = getattr(value, "id", None)
    if isinstance(result_id, str):
        return result_id
    raise InvalidTask(f"depends_on must be a TaskResult or a result id, got {value!r}")


def _check_name(option: str, value: str, where: str, *, length: bool = True) -> None:
    """Refuse text a store cannot hold (and, with ``length``, a name longer than a column)."""
    problem = name_problem(value) if length else text_problem(value)
    if problem:
        raise InvalidTask(f"{option} of {where} {problem}, got {value!r}")


def _normalize_qualifiers(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        # an item with ``as_qualifier(task_path, index)`` (Django's ``Setting``) names its pair
        pairs = [
            p.as_qualifier(where, i) if hasattr(p, "as_qualifier") else tuple(p)
            for i, p in enumerate(value)
        ]
    else:
        raise InvalidTask(f"qualifiers of {where} must be a dict of str to str, got {value!r}")
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
            raise InvalidTask(
                f"qualifiers of {where} must map non-empty strings to strings, got {pair!r}"
            )
        for text in pair:
            _check_name("qualifiers", text, where, length=False)
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def _check_extension_names(options: Mapping[str, Any], where: str, allow_depends_on: bool) -> None:
    valid = set(EXTENSION_OPTIONS)
    if not allow_depends_on:
        valid.discard("depends_on")
    unknown = sorted(set(options) - valid)
    if unknown:
        listed = ", ".join(sorted(valid | set(_DJANGO_OPTIONS) | {"takes_context"}))
        hint = (
            " (depends_on is set per enqueue: task.using(depends_on=result))"
            if "depends_on" in unknown and not allow_depends_on
            else ""
        )
        raise InvalidTask(
            f"unknown task option(s) {', '.join(map(repr, unknown))} for {where}{hint}; "
            f"valid options are: {listed}"
        )


def _check_function(func: object, takes_context: bool) -> None:
    if not callable(func):
        raise InvalidTask(f"@task needs a function, got {func!r}")
    if not is_module_level_function(func):
        name = getattr(func, "__qualname__", repr(func))
        module = getattr(func, "__module__", "?")
        raise InvalidTask(
            f"task functions must be plain functions defined at module level so workers can "
            f"import them; {module}.{name} is not (lambdas, nested functions, methods and "
            "other callables cannot be tasks)"
        )
    if takes_context:
        params = list(inspect.signature(func).parameters)
        if not params or params[0] != "context":
            raise InvalidTask(
                f"{compute_module_path(func)} has takes_context=True, so its first parameter "
                "must be named 'context'"
            )


@overload
def task(function: Callable[P, T], /) -> Task[P, T]: ...


@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: Literal[False] = False,
    **extensions: Any,
) -> Callable[[Callable[P, T]], Task[P, T]]: ...


@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: Literal[True],
    **extensions: Any,
) -> Callable[[Callable[Concatenate[TaskContext, P], T]], Task[P, T]]: ...


def task(
    function: Callable[..., Any] | None = None,
    /,
    *,
    priority: int = DEFAULT_PRIORITY,
    queue_name: str = DEFAULT_QUEUE_NAME,
    backend: str = DEFAULT_BACKEND_ALIAS,
    takes_context: bool = False,
    **extensions: Any,
) -> Any:
    """Declare a module-level function (sync or async) as a task.

    Use bare (``@task``) or called (``@task(priority=10, queue_name="emails", retries=3,
    timeout=60)``). Extensions: ``retries``, ``retry_backoff`` (base seconds, doubled per
    attempt, with jitter), ``retry_backoff_max``, ``retry_on`` (exception classes),
    ``timeout`` (seconds), ``limit``/``limit_key`` and ``qualifiers``. The backend is looked
    up when the task is enqueued, so ``configure()`` may run after the module is imported.
    """
    _check_extension_names(extensions, "@task", allow_depends_on=False)
    if isinstance(takes_context, bool) is False:
        raise InvalidTask(f"takes_context must be True or False, got {takes_context!r}")

    def wrap(func: Callable[..., Any]) -> Task[Any, Any]:
        _check_function(func, takes_context)
        declared: Task[Any, Any] = Task(
            func=func,
            priority=priority,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            **extensions,
        )
        from taskyard.tasks.registry import register

        register(declared)
        return declared

    if function is not None:
        return wrap(function)
    return wrap
