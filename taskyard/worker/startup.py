"""Reaching the backend when a long-running command (``worker``, ``rqworker``, ``cron``) starts.

- A **permanent** error — the database does not exist, authentication failed, the host name is
  unknown, a SQLite file or directory is missing, taskyard's tables are missing or outdated —
  stops the command at once with one line that names the target (exit status 2).
- A **transient** error — connection refused, a timeout, a server starting up — is retried:
  one log line per retry, waiting 1, 2, 4, 8, 16 s (doubling, at most 30 s) between tries,
  ``--connect-retries`` times (default 5, about 31 s in all); then the command stops with one
  line (exit status 1).

Once a worker runs, losing its store is handled by the worker itself (it logs, backs off and
reconnects); this module is only about starting.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from taskyard.backends.base import Backend
from taskyard.backends.database.backend import DatabaseBackend
from taskyard.command import EXIT_FAILURE, EXIT_USAGE, CommandError
from taskyard.exceptions import BackendMissing, InvalidTaskBackend

logger = logging.getLogger("taskyard.worker.startup")

DEFAULT_CONNECT_RETRIES = 5
FIRST_DELAY = 1.0
MAX_DELAY = 30.0

#: PostgreSQL SQLSTATEs that no retry will fix.
_PERMANENT_SQLSTATES = {
    "3D000": "the database does not exist",
    "28P01": "authentication failed",
    "28000": "the server refused the login",
    "42501": "permission denied",
}
#: Patterns (regular expressions, lower case) of driver messages that mean "fix the URL"
#: rather than "wait"; the first that matches names the reason.
_PERMANENT_TEXT = (
    ("could not translate host name", "unknown host"),
    ("name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("no address associated with hostname", "unknown host"),
    (r'database "[^"]*" does not exist', "the database does not exist"),
    (r'role "[^"]*" does not exist', "the user (role) does not exist"),
    ("does not exist", "it does not exist"),
    ("password authentication failed", "authentication failed"),
    ("authentication failed", "authentication failed"),
    ("invalid username-password pair", "authentication failed"),
    ("wrongpass", "authentication failed"),
    ("noauth", "authentication required"),
    ("invalid db index", "no such Redis database number"),
    ("db index is out of range", "no such Redis database number"),
)


def add_connect_arguments(parser: Any) -> None:
    """``--connect-retries N`` for the long-running commands."""
    parser.add_argument(
        "--connect-retries",
        type=int,
        default=DEFAULT_CONNECT_RETRIES,
        metavar="N",
        help="at start-up, retry an unreachable backend N times, 1, 2, 4... s apart (at most "
        f"30 s; default {DEFAULT_CONNECT_RETRIES}, about 31 s in all; 0: fail at once); "
        "permanent errors (unknown database, host or credentials) are never retried",
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def one_line(exc: BaseException) -> str:
    """The innermost (driver's) message of ``exc``, on one line."""
    innermost = list(_chain(exc))[-1]
    text = " ".join(str(innermost).split())
    return text or type(innermost).__name__


def permanent_reason(exc: BaseException) -> str | None:
    """Why ``exc`` will not go away by waiting, or ``None`` if it may (a transient error)."""
    for error in _chain(exc):
        if isinstance(error, InvalidTaskBackend | BackendMissing):
            return "configuration"
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _PERMANENT_SQLSTATES:
            return _PERMANENT_SQLSTATES[sqlstate]
        if type(error).__name__ == "AuthenticationError":
            return "authentication failed"
    text = " ".join(str(e) for e in _chain(exc)).lower()
    for pattern, reason in _PERMANENT_TEXT:
        if re.search(pattern, text):
            return reason
    return None


def reach(
    check: Callable[[], object],
    target: str,
    retries: int = DEFAULT_CONNECT_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``check`` until it succeeds; raise ``CommandError`` (one line naming ``target``) on
    a permanent error at once, or on a transient one after ``retries`` retries."""
    delay = FIRST_DELAY
    for attempt in range(max(0, retries) + 1):
        try:
            check()
            if attempt:
                logger.info("%s answered", target)
            return
        except Exception as exc:
            reason = permanent_reason(exc)
            if reason == "configuration":
                raise CommandError(" ".join(str(exc).split()), EXIT_USAGE) from exc
            if reason is not None:
                raise CommandError(
                    f"cannot use {target}: {reason} ({one_line(exc)}); not retried: fix the "
                    "URL or settings",
                    EXIT_USAGE,
                ) from exc
            if attempt >= retries:
                tries = f"after {attempt + 1} tries" if attempt else "(--connect-retries 0)"
                raise CommandError(
                    f"cannot reach {target} {tries}: {one_line(exc)}", EXIT_FAILURE
                ) from exc
            logger.warning(
                "%s unreachable (%s); retry %d of %d in %gs",
                target,
                one_line(exc),
                attempt + 1,
                retries,
                delay,
            )
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


def database_ready(backend: DatabaseBackend) -> None:
    """The database answers and carries taskyard's current schema (else a permanent error)."""
    have, latest = backend.schema_status()
    if have < latest:
        raise InvalidTaskBackend(
            f"{backend.connector.describe()} has taskyard schema version {have}, this taskyard "
            f"needs {latest}: run `taskyard migrate`"
        )


def describe(backend: Backend) -> str:
    """The backend's store, for messages: its redacted URL."""
    if isinstance(backend, DatabaseBackend):
        return backend.connector.describe() if backend._connector else _redacted(backend.url)
    redis = sys.modules.get("taskyard.backends.redis.backend")
    if redis is not None and isinstance(backend, redis.RedisBackend):
        return str(backend.describe_connection())
    return f"backend {backend.alias!r}"


def _redacted(url: str) -> str:
    from taskyard.backends.database.connectors import redact

    return redact(url)


def reach_backend(backend: Backend, retries: int = DEFAULT_CONNECT_RETRIES) -> None:
    """``reach()`` a Database backend (schema current) or a Redis backend (``PING``); other
    backends have nothing to reach."""
    if isinstance(backend, DatabaseBackend):
        reach(lambda: database_ready(backend), describe(backend), retries)
        return
    redis = sys.modules.get("taskyard.backends.redis.backend")
    if redis is not None and isinstance(backend, redis.RedisBackend):
        reach(lambda: backend._guard(backend.connection().ping), describe(backend), retries)
