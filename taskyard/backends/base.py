"""The abstract ``Backend``: capability flags, settings checks and the one validation step."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from taskyard.exceptions import InvalidTask, InvalidTaskBackend
from taskyard.tasks.execution import utcnow
from taskyard.tasks.limits import name_problem
from taskyard.tasks.results import TaskResult, TaskResultStatus, current_enqueuer, new_id
from taskyard.tasks.serialization import normalize_arguments
from taskyard.tasks.task import DEFAULT_QUEUE_NAME, PreparedCall, Task

_PARAM_KEYS = ("BACKEND", "QUEUES", "OPTIONS")

_preassigned_id: ContextVar[str | None] = ContextVar("taskyard_preassigned_id", default=None)


@contextmanager
def preassigned_result_id(result_id: str) -> Iterator[None]:
    """Inside the block, the next result created gets ``result_id`` (used to hand a caller its
    result id before the task is actually enqueued, e.g. on transaction commit)."""
    token = _preassigned_id.set(result_id)
    try:
        yield
    finally:
        _preassigned_id.reset(token)


def unimportable(task: Task[Any, Any]) -> str | None:
    """Why a worker could not import ``task`` by its module path, or ``None``."""
    path = task.module_path
    if path.startswith("__main__."):
        return "it is defined in the script being run (__main__)"
    if "<locals>" in path:
        return "it is defined inside a function, not at module level"
    return None


def _run_as_module_hint() -> str:
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if not script or os.path.basename(script) == "__main__.py":
        return ""
    stem = os.path.splitext(os.path.basename(script))[0]
    return f", or run the script as a module (python -m {stem}) so its tasks are named {stem}.*"


@dataclass(frozen=True)
class Option:
    """One key a backend accepts in ``OPTIONS``.

    ``kind`` is the expected type (or tuple of types); ``check`` may reject a value with a
    message; URL query strings are coerced to ``kind``.
    """

    kind: type | tuple[type, ...]
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None

    def coerce(self, text: str) -> Any:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        for kind in kinds:
            if kind is bool:
                lowered = text.lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
            elif kind in (int, float):
                try:
                    return kind(text)
                except ValueError:
                    continue
            elif kind is str:
                return text
            elif kind is list:
                return [part for part in text.split(",") if part]
        return text


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def positive(value: Any) -> str | None:
    return None if _finite(value) and value > 0 else "must be a finite number > 0"


def not_negative(value: Any) -> str | None:
    return None if _finite(value) and value >= 0 else "must be a finite number >= 0"


class Backend(ABC):
    """Base class of every backend.

    Subclasses set the ``supports_*`` flags truthfully and list their ``OPTIONS`` keys in
    ``options_schema``; ``validate_task`` then refuses, with a message naming the option and
    the backend, anything the backend cannot honour.
    """

    supports_defer: ClassVar[bool] = False
    supports_priority: ClassVar[bool] = False
    supports_get_result: ClassVar[bool] = False
    supports_async_task: ClassVar[bool] = False
    supports_retries: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = False
    supports_depends_on: ClassVar[bool] = False
    supports_limit: ClassVar[bool] = False
    supports_qualifiers: ClassVar[bool] = False
    supports_cancel: ClassVar[bool] = False
    #: tasks run in other processes (workers), which import them by module path: a task
    #: defined in ``__main__`` or inside a function is refused at enqueue
    requires_importable_tasks: ClassVar[bool] = False

    options_schema: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        """Store the settings. Constructors do no I/O and start nothing."""
        self.alias = alias
        checked = self.check_params(alias, params)
        self.queues: frozenset[str] = frozenset(checked["QUEUES"])
        self.options: dict[str, Any] = checked["OPTIONS"]

    # -- settings -----------------------------------------------------------------------------

    @classmethod
    def describe(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def check_params(cls, alias: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate one settings entry; return it with defaults filled in.

        Raises ``InvalidTaskBackend`` naming the alias, the backend and the bad key or value.
        """
        where = f"backend {alias!r} ({cls.describe()})"
        problem = name_problem(alias) if isinstance(alias, str) else "must be a string"
        if problem:
            raise InvalidTaskBackend(f"{where}: the alias {problem}")
        if not isinstance(params, Mapping):
            raise InvalidTaskBackend(f"{where}: settings must be a dict, got {params!r}")
        unknown = sorted(set(params) - set(_PARAM_KEYS))
        if unknown:
            raise InvalidTaskBackend(
                f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are "
                f"{', '.join(_PARAM_KEYS)}"
            )
        queues = params.get("QUEUES", [DEFAULT_QUEUE_NAME])
        if isinstance(queues, str) or not isinstance(queues, Sequence | set | frozenset):
            raise InvalidTaskBackend(
                f"{where}: QUEUES must be a list of queue names, got {queues!r}"
            )
        for queue in queues:
            if not isinstance(queue, str) or not queue:
                raise InvalidTaskBackend(f"{where}: queue names must be strings, got {queue!r}")
            problem = name_problem(queue)
            if problem:
                raise InvalidTaskBackend(f"{where}: queue name {queue!r} {problem}")
        options = params.get("OPTIONS")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise InvalidTaskBackend(f"{where}: OPTIONS must be a dict, got {options!r}")
        return {"QUEUES": list(queues), "OPTIONS": cls.check_options(where, options)}

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any]) -> dict[str, Any]:
        schema = cls.options_schema
        unknown = sorted(set(options) - set(schema))
        if unknown:
            valid = ", ".join(sorted(schema)) or "(none: this backend takes no OPTIONS)"
            raise InvalidTaskBackend(
                f"{where}: unknown OPTIONS key(s) {', '.join(unknown)}; valid keys are {valid}"
            )
        out: dict[str, Any] = {}
        for key, spec in schema.items():
            if key not in options:
                out[key] = spec.default
                continue
            value = options[key]
            kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
            ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
            if not ok and float in kinds and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                names = " or ".join(k.__name__ for k in kinds)
                raise InvalidTaskBackend(
                    f"{where}: OPTIONS[{key!r}] must be {names}, got {value!r} "
                    f"({type(value).__name__})"
                )
            if spec.check is not None and value is not None:
                problem = spec.check(value)
                if problem:
                    raise InvalidTaskBackend(f"{where}: OPTIONS[{key!r}] {problem}, got {value!r}")
            out[key] = value
        return out

    # -- validation ---------------------------------------------------------------------------

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Refuse (``InvalidTask``) a task this backend cannot run as asked."""
        if task._checked_by is self:
            return
        refuse = self._refuse
        if task.is_async and not self.supports_async_task:
            refuse(task, "an async function", "async tasks")
        if task.priority != 0 and not self.supports_priority:
            refuse(task, f"priority={task.priority}", "priorities")
        if task.run_after is not None and not self.supports_defer:
            refuse(task, "run_after", "deferred tasks (run_after)")
        if task.retries and not self.supports_retries:
            refuse(task, f"retries={task.retries}", "retries")
        if task.timeout is not None and not self.supports_timeout:
            refuse(task, f"timeout={task.timeout}", "timeouts")
        if task.depends_on is not None and not self.supports_depends_on:
            refuse(task, "depends_on", "dependencies")
        if task.limit is not None and not self.supports_limit:
            refuse(task, f"limit={task.limit}", "limits")
        if task.qualifiers and not self.supports_qualifiers:
            refuse(task, "qualifiers", "qualifiers")
        if self.requires_importable_tasks:
            problem = unimportable(task)
            if problem is not None:
                raise InvalidTask(
                    f"{task.module_path}: {problem}, which a worker cannot import; backend "
                    f"{self.alias!r} ({type(self).__name__}) runs tasks in worker processes. "
                    "Move the task into a module (e.g. tasks.py) and import it from there"
                    + (_run_as_module_hint() if task.module_path.startswith("__main__.") else "")
                )
        if self.queues and task.queue_name not in self.queues:
            raise InvalidTask(
                f"queue {task.queue_name!r} of {task.module_path} is not configured for backend "
                f"{self.alias!r}; its QUEUES are {sorted(self.queues)}"
            )
        object.__setattr__(task, "_checked_by", self)

    def _refuse(self, task: Task[Any, Any], what: str, feature: str) -> None:
        raise InvalidTask(
            f"{task.module_path}: {what} cannot be honoured by backend {self.alias!r} "
            f"({type(self).__name__}), which does not support {feature}"
        )

    def new_result(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        normalized: bool = False,
        enqueued_at: datetime | None = None,
        enqueued_by: str | None = None,
        result_id: str | None = None,
    ) -> TaskResult[Any]:
        """A READY result with a fresh id for ``task`` (arguments checked unless ``normalized``).

        ``enqueued_at``/``enqueued_by`` default to now and the current enqueuer; bulk enqueues
        pass one value for the whole batch, and ids made in one go (``result_id``).
        """
        if normalized:
            norm_args, norm_kwargs = list(args), dict(kwargs)
        else:
            norm_args, norm_kwargs = normalize_arguments(args, kwargs, task.module_path)
        return TaskResult(
            task=task,
            id=_preassigned_id.get() or result_id or new_id(),
            status=TaskResultStatus.READY,
            args=norm_args,
            kwargs=norm_kwargs,
            backend=self.alias,
            enqueued_at=enqueued_at or utcnow(),
            enqueued_by=enqueued_by or current_enqueuer(),
            backend_obj=self,
        )

    # -- the API --------------------------------------------------------------------------

    @abstractmethod
    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        """Queue ``task`` with these arguments; return its result."""

    def enqueue_many(self, calls: Sequence[PreparedCall]) -> list[TaskResult[Any]]:
        """Enqueue several prepared calls; backends with a store do it in one round trip."""
        return [self.enqueue(call.task, call.args, call.kwargs) for call in calls]

    async def aenqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        return await asyncio.to_thread(self.enqueue, task, args, kwargs)

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The result with this id, or ``TaskResultDoesNotExist``."""
        raise NotImplementedError(
            f"backend {self.alias!r} ({type(self).__name__}) cannot look up results"
        )

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        return await asyncio.to_thread(self.get_result, result_id)

    def refresh_result(self, result: TaskResult[Any]) -> None:
        fresh = self.get_result(result.id)
        if fresh is not result:
            result._copy_from(fresh)

    async def arefresh_result(self, result: TaskResult[Any]) -> None:
        await asyncio.to_thread(self.refresh_result, result)

    def wait_for(self, result: TaskResult[Any], timeout: float | None) -> None:
        """Block until ``result`` is finished (polling; backends may do better)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.002
        self.refresh_result(result)
        while not result.is_finished:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"task {result.id} had not finished after {timeout}s "
                        f"(status {result.status.value})"
                    )
                delay = min(delay, left)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            self.refresh_result(result)

    def cancel(self, result: TaskResult[Any]) -> bool:
        """Cancel a pending task or ask a running one to stop; False if already finished."""
        raise InvalidTask(f"backend {self.alias!r} ({type(self).__name__}) cannot cancel tasks")

    def close(self) -> None:
        """Release resources (threads, connections). The backend may be used again later."""

    def check(self) -> list[str]:
        """Configuration problems worth reporting (used by ``taskyard check`` and Django)."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"
