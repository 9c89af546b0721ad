"""The example's tasks. Workers import this module by its path, so it must be importable
where ``taskyard rqworker`` runs (``--import examples.redis_rq.tasks``)."""

from __future__ import annotations

import time

from taskyard import TaskCancelled, TaskContext, task

SETTINGS = {
    "default": {
        "BACKEND": "taskyard.backends.redis.RedisBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"URL": "redis://127.0.0.1:6379/0"},
    }
}


@task(queue_name="emails", retries=3, retry_backoff=0.5, timeout=10)
def send_email(to: str, subject: str) -> str:
    return f"sent {subject!r} to {to}"


@task(takes_context=True, retries=2, retry_backoff=0)
def flaky(context: TaskContext, label: str) -> str:
    """Fails on its first attempt, succeeds on the second."""
    if context.attempt == 1:
        raise ConnectionError(f"{label}: connection reset")
    return f"{label} on attempt {context.attempt}"


@task(takes_context=True)
def crunch(context: TaskContext, steps: int) -> int:
    for step in range(1, steps + 1):
        context.set_progress(step, steps, f"step {step} of {steps}")
        if context.is_cancelled():
            raise TaskCancelled("stopped on request")
        time.sleep(0.01)
    return steps


@task(limit=1)
def rebuild_index(name: str) -> str:
    """At most one pending run at a time (``limit=1``: a unique task)."""
    return f"rebuilt {name}"
