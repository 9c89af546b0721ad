"""Task results: ``TaskResult``, ``TaskResultStatus``, ``TaskError`` and ``Progress``."""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskyard.exceptions import InvalidTask
from taskyard.tasks.limits import MAX_ID_LENGTH, name_problem

if TYPE_CHECKING:
    from taskyard.backends.base import Backend
    from taskyard.tasks.task import Task

T = TypeVar("T")


class TaskResultStatus(StrEnum):
    """Where a task is in its life. Django's four states plus ``CANCELLED``."""

    READY = "READY"
    """Enqueued, or waiting to be tried again after a failed attempt."""
    RUNNING = "RUNNING"
    """An attempt is executing."""
    SUCCESSFUL = "SUCCESSFUL"
    """Finished and returned a value."""
    FAILED = "FAILED"
    """Finished with an error after its last attempt, or could not be started."""
    CANCELLED = "CANCELLED"
    """Cancelled before it ran, by a failed dependency, or cooperatively while running."""


FINISHED_STATUSES = frozenset(
    {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED, TaskResultStatus.CANCELLED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskError:
    """One failed attempt: the exception's class path and its formatted traceback."""

    exception_class_path: str
    traceback: str

    @property
    def exception_class(self) -> type[BaseException]:
        """The exception class, imported lazily (raises ``ValueError`` if it is not one)."""
        module_name, _, name = self.exception_class_path.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"{self.exception_class_path!r} cannot be imported") from exc
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            raise ValueError(f"{self.exception_class_path!r} does not reference an exception")
        return found

    @property
    def message(self) -> str:
        """The last line of the traceback, ``"ValueError: bad input"``."""
        lines = self.traceback.strip().splitlines()
        return lines[-1] if lines else self.exception_class_path

    def to_json(self) -> dict[str, str]:
        return {"exception_class_path": self.exception_class_path, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> TaskError:
        return cls(exception_class_path=data["exception_class_path"], traceback=data["traceback"])


@dataclass(frozen=True, slots=True)
class Progress:
    """What a running task last reported through ``context.set_progress()``."""

    current: float
    total: float | None = None
    message: str | None = None

    @property
    def fraction(self) -> float | None:
        """``current / total`` between 0 and 1, or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current, "total": self.total, "message": self.message}

    @classmethod
    def from_json(cls, data: Any) -> Progress | None:
        if not isinstance(data, dict):
            return None
        return cls(data.get("current", 0), data.get("total"), data.get("message"))


class TaskResult(Generic[T]):
    """The state of one enqueued run of a task, as last read from its backend.

    Attributes are read-only; ``refresh()`` re-reads them from the backend. ``wait()`` blocks
    until the task finishes. ``return_value`` raises ``ValueError`` unless the task succeeded.
    """

    __slots__ = (
        "_args",
        "_attempt",
        "_backend_obj",
        "_cancel_requested",
        "_enqueued_at",
        "_enqueued_by",
        "_errors",
        "_finished_at",
        "_id",
        "_kwargs",
        "_last_attempted_at",
        "_progress",
        "_retries_left",
        "_return_value",
        "_started_at",
        "_status",
        "_task",
        "_worker_ids",
        "backend",
    )

    def __init__(
        self,
        *,
        task: Task[Any, T],
        id: str,
        status: TaskResultStatus,
        args: list[Any],
        kwargs: dict[str, Any],
        backend: str,
        enqueued_at: datetime | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        last_attempted_at: datetime | None = None,
        errors: list[TaskError] | None = None,
        worker_ids: list[str] | None = None,
        return_value: Any = None,
        progress: Progress | None = None,
        enqueued_by: str | None = None,
        backend_obj: Backend | None = None,
    ) -> None:
        self._task = task
        self._id = id
        self._status = status
        self._args = args
        self._kwargs = kwargs
        self.backend = backend
        self._enqueued_at = enqueued_at
        self._started_at = started_at
        self._finished_at = finished_at
        self._last_attempted_at = last_attempted_at
        self._errors = errors if errors is not None else []
        self._worker_ids = worker_ids if worker_ids is not None else []
        self._return_value = return_value
        self._progress = progress
        self._enqueued_by = enqueued_by
        self._backend_obj = backend_obj
        self._cancel_requested = False
        # Retries still allowed after the current attempt, when the store keeps that budget
        # (interrupted attempts do not spend it); None: ``task.retries`` minus attempts.
        self._retries_left: int | None = None
        # The number the store knows the current attempt by (fences its completion); None:
        # ``attempts``.
        self._attempt: int | None = None

    # -- read-only attributes -------------------------------------------------------------

    @property
    def id(self) -> str:
        """Unique id of this result (a UUID string)."""
        return self._id

    @property
    def task(self) -> Task[Any, T]:
        """The task (with the options it was enqueued with)."""
        return self._task

    @property
    def status(self) -> TaskResultStatus:
        return self._status

    @property
    def args(self) -> list[Any]:
        return self._args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._kwargs

    @property
    def enqueued_at(self) -> datetime | None:
        return self._enqueued_at

    @property
    def started_at(self) -> datetime | None:
        """When the first attempt started."""
        return self._started_at

    @property
    def finished_at(self) -> datetime | None:
        return self._finished_at

    @property
    def last_attempted_at(self) -> datetime | None:
        """When the latest attempt started."""
        return self._last_attempted_at

    @property
    def errors(self) -> list[TaskError]:
        """One ``TaskError`` per failed attempt, oldest first."""
        return self._errors

    @property
    def worker_ids(self) -> list[str]:
        """The worker that ran each attempt, oldest first."""
        return self._worker_ids

    @property
    def attempts(self) -> int:
        """How many attempts have started."""
        return len(self._worker_ids)

    @property
    def progress(self) -> Progress | None:
        """The last progress the task reported, or ``None``."""
        return self._progress

    @property
    def enqueued_by(self) -> str | None:
        """Who enqueued the task (``hostname:pid`` unless the caller set an id)."""
        return self._enqueued_by

    @property
    def is_finished(self) -> bool:
        """True once the task is SUCCESSFUL, FAILED or CANCELLED."""
        return self._status in FINISHED_STATUSES

    @property
    def return_value(self) -> T | None:
        """The value the task returned. Raises ``ValueError`` unless the task succeeded."""
        status = self._status
        if status is TaskResultStatus.SUCCESSFUL:
            return self._return_value  # type: ignore[no-any-return]
        if status is TaskResultStatus.FAILED:
            raise ValueError("Task failed")
        if status is TaskResultStatus.CANCELLED:
            raise ValueError("Task was cancelled")
        raise ValueError("Task has not finished yet")

    def __repr__(self) -> str:
        return (
            f"<TaskResult id={self._id} task={self._task.module_path} "
            f"status={self._status.value} attempts={self.attempts}>"
        )

    # -- talking to the backend ----------------------------------------------------------

    def get_backend(self) -> Backend:
        """The backend object that holds this result."""
        if self._backend_obj is None:
            from taskyard.config import backends

            self._backend_obj = backends[self.backend]
        return self._backend_obj

    def refresh(self) -> None:
        """Re-read every attribute from the backend."""
        self.get_backend().refresh_result(self)

    async def arefresh(self) -> None:
        """Async ``refresh()``."""
        await self.get_backend().arefresh_result(self)

    def wait(self, timeout: float | None = None) -> TaskResult[T]:
        """Block until the task has finished; return ``self`` (refreshed).

        Raises ``TimeoutError`` if it has not finished within ``timeout`` seconds.
        """
        if not self.is_finished:
            self.get_backend().wait_for(self, timeout)
        return self

    async def wait_async(self, timeout: float | None = None) -> TaskResult[T]:
        """Async ``wait()``: polls without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        await self.arefresh()
        while not self.is_finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"task {self._id} had not finished after {timeout}s "
                    f"(status {self._status.value})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
            await self.arefresh()
        return self

    def cancel(self) -> bool:
        """Cancel the task.

        A task that has not started becomes CANCELLED and will never run. A running task is
        asked to stop (its ``context.is_cancelled()`` turns true) and ends CANCELLED if it
        raises ``TaskCancelled``. Returns False if the task had already finished.
        """
        return self.get_backend().cancel(self)

    def _copy_from(self, other: TaskResult[Any]) -> None:
        self._status = other._status
        self._enqueued_at = other._enqueued_at
        self._started_at = other._started_at
        self._finished_at = other._finished_at
        self._last_attempted_at = other._last_attempted_at
        self._errors = list(other._errors)
        self._worker_ids = list(other._worker_ids)
        self._return_value = other._return_value
        self._progress = other._progress
        self._enqueued_by = other._enqueued_by


def new_id() -> str:
    """A fresh result id: a UUID version 7 string (time-ordered, so indexes stay compact)."""
    return new_ids(1)[0]


def new_ids(n: int) -> list[str]:
    """``n`` fresh result ids (one clock reading and one read of random bytes for all)."""
    stamp = (time.time_ns() // 1_000_000) << 80
    pool = os.urandom(10 * n)
    out = []
    for start in range(0, 10 * n, 10):
        value = stamp | int.from_bytes(pool[start : start + 10], "big")
        h = f"{(value & _UUID7_CLEAR) | _UUID7_SET:032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


_UUID7_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID7_SET = (0x7 << 76) | (0x2 << 62)

_enqueued_by: ContextVar[str | None] = ContextVar("taskyard_enqueued_by", default=None)
_process_identity: tuple[int, str] | None = None


def process_identity() -> str:
    """``hostname:pid`` of this process (recomputed after a fork)."""
    global _process_identity
    pid = os.getpid()
    if _process_identity is None or _process_identity[0] != pid:
        _process_identity = (pid, f"{socket.gethostname()}:{pid}")
    return _process_identity[1]


def current_enqueuer() -> str:
    """Who is enqueueing right now: the id set by ``enqueued_by()``, else ``hostname:pid``."""
    return _enqueued_by.get() or process_identity()


@contextmanager
def enqueued_by(identity: str) -> Iterator[None]:
    """Record ``identity`` (a user, a request id) as the enqueuer of tasks enqueued inside.

    ``InvalidTask`` if it is not text a store can hold (``MAX_ID_LENGTH`` characters at most).
    """
    problem = (
        name_problem(identity, MAX_ID_LENGTH) if isinstance(identity, str) else "is not a string"
    )
    if problem:
        raise InvalidTask(f"enqueued_by identity {identity!r} {problem}")
    token = _enqueued_by.set(identity)
    try:
        yield
    finally:
        _enqueued_by.reset(token)
