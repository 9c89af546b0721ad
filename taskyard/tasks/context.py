"""``TaskContext``: what a running task (declared with ``takes_context=True``) can see and do."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

from taskyard.tasks.limits import storable_text
from taskyard.tasks.results import Progress

if TYPE_CHECKING:
    from taskyard.tasks.results import TaskResult


class AttemptControl(Protocol):
    """How an executing backend stores progress, extends leases and reports cancellation."""

    def set_progress(self, result: TaskResult[Any], progress: Progress) -> None: ...

    def heartbeat(self, result: TaskResult[Any]) -> None: ...

    def is_cancelled(self, result: TaskResult[Any]) -> bool: ...


class InMemoryControl:
    """Control for backends whose results live in this process: nothing to write anywhere."""

    def set_progress(self, result: TaskResult[Any], progress: Progress) -> None:
        pass

    def heartbeat(self, result: TaskResult[Any]) -> None:
        pass

    def is_cancelled(self, result: TaskResult[Any]) -> bool:
        return result._cancel_requested


IN_MEMORY = InMemoryControl()


class TaskContext:
    """Passed as the first argument (``context``) to tasks declared with ``takes_context=True``."""

    __slots__ = ("_control", "task_result")

    def __init__(self, task_result: TaskResult[Any], control: AttemptControl = IN_MEMORY) -> None:
        self.task_result = task_result
        self._control = control

    @property
    def attempt(self) -> int:
        """Which attempt this is: 1 for the first run, 2 for the first retry, ..."""
        return self.task_result.attempts

    def set_progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Report progress (``current`` of ``total``, optional message); readable from the result.

        Also counts as a heartbeat on backends with leases.
        """
        for name, value in (("current", current), ("total", total)):
            if value is None and name == "total":
                continue
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise TypeError(f"set_progress: {name} must be a finite number, got {value!r}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"set_progress: message must be a string, got {message!r}")
        if message is not None:
            message = storable_text(message)  # a NUL or lone surrogate is shown escaped
        progress = Progress(current, total, message)
        self.task_result._progress = progress
        self._control.set_progress(self.task_result, progress)

    def heartbeat(self) -> None:
        """Tell the backend this run is alive (extends its lease on durable backends)."""
        self._control.heartbeat(self.task_result)

    def is_cancelled(self) -> bool:
        """True once someone called ``cancel()`` on this task's result.

        The task should stop: raise ``taskyard.TaskCancelled`` to end the run as CANCELLED.
        """
        return self._control.is_cancelled(self.task_result)
