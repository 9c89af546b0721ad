"""Running queued tasks from a Django test: ``run_until_empty()``.

Works inside ``TestCase`` (whose transaction other connections cannot see): tasks are claimed
and run in the calling thread on the test's own connection, which stays open.
"""

from __future__ import annotations

from typing import Any

from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.claimed import open_claimed
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.tasks.execution import announce_outcome, execute
from taskyard.tasks.results import TaskResult


def run_until_empty(
    alias: str = "default", queues: list[str] | None = None, max_tasks: int = 10_000
) -> list[TaskResult[Any]]:
    """Run every due task of the Database backend ``alias`` (including tasks they enqueue)
    in this thread; return the results of the attempts run. Other backends: see
    ``taskyard.testing.run_enqueued()`` for Dummy."""
    from taskyard.config import backends
    from taskyard.contrib.django.settings import ensure_configured

    ensure_configured()
    backend = backends[alias]
    if not isinstance(backend, DatabaseBackend):
        raise TypeError(f"backend {alias!r} is {type(backend).__name__}, not the Database backend")
    return drain(backend, queues, max_tasks)


def drain(
    backend: DatabaseBackend, queues: list[str] | None = None, max_tasks: int = 10_000
) -> list[TaskResult[Any]]:
    """Claim and run due tasks in this thread until none is left."""
    ops = QueueOps(backend)
    worker_id = "test-runner"
    done: list[TaskResult[Any]] = []
    while len(done) < max_tasks:
        rows = ops.claim(worker_id, queues, 10, 300.0, {})
        if not rows:
            return done
        for row in rows:
            claimed = open_claimed(row, backend, worker_id)
            result, outcome = claimed.result, claimed.failed
            if outcome is None and claimed.task is not None:
                outcome = execute(
                    claimed.task, result, worker_id=worker_id, sender=type(backend), claimed=True
                )
            assert outcome is not None
            if ops.complete(worker_id, [Finished(result, outcome)]):
                announce_outcome(type(backend), result, outcome)
            done.append(result)
    return done
