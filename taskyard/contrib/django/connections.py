"""Django's connection housekeeping around every task a taskyard executor runs.

A Django request is bracketed by ``close_old_connections()`` (on ``request_started`` and
``request_finished``): a connection that is broken, or older than ``CONN_MAX_AGE``, is closed
and the next query opens a new one; ``CONN_HEALTH_CHECKS`` re-checks a reused connection
before its first query. A long-lived worker thread gets the same treatment here, per task, so
a connection killed under it (a failover, a proxy restart, an idle timeout,
``pg_terminate_backend``) is replaced instead of failing every later task.

The bracket applies only where the executing thread owns its connections: worker threads,
processes, rq jobs and ThreadPool threads. It is skipped when the task runs inline on its
caller's thread (the Immediate backend, in-test drains: ``taskyard.tasks.hooks.running_inline``)
and, as a safety net, whenever one of the thread's connections is inside ``atomic()``:
``close_if_unusable_or_obsolete()`` would close a connection whose autocommit differs from
the settings, which is what a transaction (or a ``TestCase``) looks like.

ThreadPool threads also close their connections outright when a task ends: they idle between
tasks, and a test database cannot be dropped while one holds a connection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

logger = logging.getLogger("taskyard.contrib.django")

#: Raw connections inherited across ``fork()``; kept referenced so that they are never closed
#: (closing would end the parent's session on the shared socket).
_inherited: list[Any] = []


def owns_connections() -> bool:
    """False when any of this thread's Django connections is inside ``atomic()``."""
    from django.db import connections

    return not any(conn.in_atomic_block for conn in connections.all(initialized_only=True))


def _runs_on_thread_pool(result: Any) -> bool:
    from taskyard.backends.threadpool import ThreadPoolBackend
    from taskyard.config import backends

    try:
        return isinstance(backends[result.backend], ThreadPoolBackend)
    except Exception:
        return False


@contextmanager
def connection_housekeeping(result: Any) -> Iterator[None]:
    """Run wrapper (``taskyard.tasks.hooks.add_run_wrapper``): Django's connection
    housekeeping before and after one task, on threads that own their connections."""
    from django.db import close_old_connections, connections

    if not owns_connections():
        yield
        return
    close_old_connections()
    try:
        yield
    finally:
        if owns_connections():
            if _runs_on_thread_pool(result):
                connections.close_all()
            else:
                close_old_connections()


@asynccontextmanager
async def async_connection_housekeeping(result: Any) -> AsyncIterator[None]:
    """Async run wrapper (``add_async_run_wrapper``): the same housekeeping for an async task
    on a worker's event loop. Its ORM calls run through ``sync_to_async`` on Django's thread
    for sync code, so that is where the connections are looked after (without blocking the
    loop)."""
    from asgiref.sync import sync_to_async

    await sync_to_async(_tidy, thread_sensitive=True)(None)
    try:
        yield
    finally:
        await sync_to_async(_tidy, thread_sensitive=True)(result)


def _tidy(result: Any) -> None:
    """``close_old_connections()`` on this thread, unless it is inside a transaction."""
    from django.db import close_old_connections

    if owns_connections():
        close_old_connections()


def forget_inherited_connections() -> None:
    """After ``fork()`` (an rq work horse, a child worker): drop the Django connections the
    child inherited without closing them, so the parent's sessions are left alone and the child
    opens its own."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
            conn.in_atomic_block = False
            conn.savepoint_ids = []
            conn.needs_rollback = False


def install() -> None:
    """Register the run wrapper and the fork handler (``AppConfig.ready``)."""
    from taskyard.tasks.hooks import add_async_run_wrapper, add_run_wrapper

    add_run_wrapper(connection_housekeeping)
    add_async_run_wrapper(async_connection_housekeeping)
    global _fork_handler_registered
    if hasattr(os, "register_at_fork") and not _fork_handler_registered:
        os.register_at_fork(after_in_child=forget_inherited_connections)
        _fork_handler_registered = True


_fork_handler_registered = False
