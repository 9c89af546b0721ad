"""Running queued tasks from a Django test: ``run_until_empty()``.

Works inside ``TestCase`` (whose transaction other connections cannot see): tasks are claimed
and run in the calling thread on the test's own connection, which stays open. Follow-up tasks
enqueued by the tasks run are run too. ``call_command("db_worker", "--batch")`` and
``call_command("taskyard", "worker", "--burst")`` use the same drain when the queue's
connection is inside a transaction (see ``docs/django.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.claimed import open_claimed
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.tasks.execution import announce_outcome, execute
from taskyard.tasks.hooks import running_inline
from taskyard.tasks.results import TaskResult

#: Lease of a task claimed by an in-place drain (it runs at once, in the claiming thread).
DRAIN_LEASE = 300.0


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
    backend: DatabaseBackend,
    queues: Sequence[str] | None = None,
    max_tasks: int | None = 10_000,
    *,
    exclude_queues: Sequence[str] = (),
    qualifiers: Mapping[str, str] | None = None,
    worker_id: str = "test-runner",
    batch_size: int = 10,
) -> list[TaskResult[Any]]:
    """Claim and run due tasks in this thread until none is left (or ``max_tasks`` ran).

    Tasks run inline (``running_inline``): on this thread's connection and inside its
    transaction, without the connection housekeeping workers do."""
    from taskyard.contrib.django.qualifiers import worker_qualifiers

    ops = QueueOps(backend)
    own = {**worker_qualifiers(), **(qualifiers or {})}
    done: list[TaskResult[Any]] = []
    while max_tasks is None or len(done) < max_tasks:
        limit = batch_size if max_tasks is None else min(batch_size, max_tasks - len(done))
        rows = ops.claim(worker_id, queues, limit, DRAIN_LEASE, own, list(exclude_queues))
        if not rows:
            return done
        for row in rows:
            claimed = open_claimed(row, backend, worker_id)
            result, outcome = claimed.result, claimed.failed
            if outcome is None and claimed.task is not None:
                with running_inline():
                    outcome = execute(
                        claimed.task,
                        result,
                        worker_id=worker_id,
                        sender=type(backend),
                        claimed=True,
                    )
            assert outcome is not None
            if ops.complete(worker_id, [Finished(result, outcome)]):
                announce_outcome(type(backend), result, outcome)
            done.append(result)
    return done


def in_transaction(backend: DatabaseBackend) -> bool:
    """Whether the Django connection holding ``backend``'s queue is inside ``atomic()`` in this
    thread (a ``TestCase``, or a caller's transaction): then a worker on other threads could
    not see what this thread wrote, and an in-place drain is what runs the tasks."""
    database = getattr(backend, "database", None)
    if database is None:
        return False
    from django.db import connections

    return bool(connections[database].in_atomic_block)
