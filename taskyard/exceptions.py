"""Exceptions raised by taskyard.

The first four carry Django's names (``django.tasks.exceptions``); the rest are taskyard's
extensions. ``TaskTimeout`` and ``TaskCancelled`` derive from ``BaseException`` on purpose,
like ``asyncio.CancelledError``: a task's own ``except Exception:`` block must not swallow the
signal that stops it.
"""

from __future__ import annotations


class TaskyardError(Exception):
    """Base class for taskyard's ordinary errors. Not raised directly."""


class InvalidTask(TaskyardError):
    """A task, its options or its arguments cannot be used (raised at declaration or enqueue)."""


class InvalidTaskArguments(InvalidTask, TypeError):
    """An argument or return value is not JSON. Also a ``TypeError``."""


class InvalidTaskBackend(TaskyardError):
    """A backend entry in the settings is wrong, or an alias is not configured."""


class TaskResultDoesNotExist(TaskyardError):
    """No result with the requested id exists in the backend."""


class TaskResultMismatch(TaskyardError):
    """The result exists but belongs to another task."""


class TaskLimitError(TaskyardError):
    """Enqueueing would exceed the task's ``limit`` of pending runs for its ``limit_key``."""


class BackendUnavailable(TaskyardError):
    """The backend's store (database, Redis) could not be reached."""


class NotReplicated(BackendUnavailable):
    """A Redis enqueue with ``MIN_REPLICAS`` stored its tasks on the master, but fewer replicas
    than required acknowledged them within ``MIN_REPLICAS_TIMEOUT``: a failover now could lose
    them. ``result_ids`` names the tasks; they may still run (they are on the master)."""

    def __init__(self, message: str, result_ids: list[str], acknowledged: int) -> None:
        super().__init__(message)
        self.result_ids = result_ids
        self.acknowledged = acknowledged


class BackendMissing(BackendUnavailable):
    """The backend's store does not exist (a SQLite file or its directory): taskyard creates a
    SQLite file only through ``taskyard migrate``, ``taskyard worker --create``, an explicit
    ``AUTO_MIGRATE: True`` or the embedded default ``./taskyard.sqlite3``, and never a
    directory."""


class InvalidReturnValue(TaskyardError, TypeError):
    """A task returned a value that is not JSON (recorded as the attempt's error)."""


class WorkerLost(TaskyardError):
    """Recorded as the error of an attempt whose worker died, was shut down or stopped renewing
    its lease before the attempt ended (an *interrupted* attempt, re-run whatever ``retries``
    says up to the backend's bound on interruptions); and the error of a task that was
    interrupted more often than that bound."""


class WorkerInterrupted(SystemExit):
    """Raised inside a running task when its worker stops it for a shutdown (a cold shutdown,
    or a warm one past its timeout).

    The attempt is *interrupted*, not failed: the worker hands the task back to run again. It
    derives from ``SystemExit`` because the worker is exiting; a task's ``except Exception:``
    does not catch it.
    """


class CorruptTask(TaskyardError):
    """A stored task's data cannot be read (written by something other than taskyard).

    Recorded as the error of a task set aside for it; raised by a store when a statement
    failed on such data (the worker then sets those tasks aside and carries on)."""


class TaskTimeout(BaseException):
    """Raised inside a task that ran longer than its ``timeout``; recorded as its error."""


class TaskCancelled(BaseException):
    """Raise it inside a task (after ``context.is_cancelled()``) to end the run as CANCELLED."""


# Django 5.2's ``django_tasks`` backport spells this one with a suffix.
InvalidTaskError = InvalidTask

__all__ = [
    "BackendMissing",
    "BackendUnavailable",
    "CorruptTask",
    "InvalidReturnValue",
    "InvalidTask",
    "InvalidTaskArguments",
    "InvalidTaskBackend",
    "InvalidTaskError",
    "TaskCancelled",
    "TaskLimitError",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskTimeout",
    "TaskyardError",
    "WorkerInterrupted",
    "WorkerLost",
]
