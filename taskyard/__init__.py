"""taskyard: background tasks with one API and pluggable backends.

::

    from taskyard import task, configure

    configure({"default": {"BACKEND": "taskyard.backends.threadpool.ThreadPoolBackend"}})

    @task(retries=3, timeout=60)
    def send_email(to: str, subject: str) -> str: ...

    result = send_email.enqueue("a@example.com", "hi")
    result.wait(timeout=10).return_value

``task_backends["default"]`` is the configured default backend (Django's name for its
handler); ``taskyard.backends`` is the package of backend modules
(``import taskyard.backends.database as db`` works for every backend).
"""

from taskyard.config import configure, task_backends
from taskyard.exceptions import (
    BackendUnavailable,
    InvalidTask,
    InvalidTaskArguments,
    InvalidTaskBackend,
    NotReplicated,
    TaskCancelled,
    TaskLimitError,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskTimeout,
)
from taskyard.tasks.context import TaskContext
from taskyard.tasks.hooks import task_enqueued, task_finished, task_started
from taskyard.tasks.results import (
    Progress,
    TaskError,
    TaskResult,
    TaskResultStatus,
    enqueued_by,
)
from taskyard.tasks.task import Task, enqueue_many, task

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "InvalidTask",
    "InvalidTaskArguments",
    "InvalidTaskBackend",
    "NotReplicated",
    "Progress",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskLimitError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "TaskTimeout",
    "configure",
    "enqueue_many",
    "enqueued_by",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
