"""Connections to the queue's database: the ``Connector`` base (named queries, transactions,
type adaptation) and ``make_connector``; SQLite's is in ``sqlite.py``, PostgreSQL's in
``postgres.py``.

Queries live in ``sql/<dialect>/queries.sql``; each connector runs them by name. Connections
are per thread and per process (a forked child opens its own). Driver errors that mean "the
database is not there right now" become ``BackendUnavailable``; a missing schema becomes an
``InvalidTaskBackend`` that says to run ``taskyard migrate``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from taskyard.exceptions import (
    BackendUnavailable,
    InvalidTaskBackend,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger("taskyard.backends.database")

Row = dict[str, Any]

_NAME = re.compile(r"^-- name: (\S+)\s*$", re.MULTILINE)


#: Files of named queries in ``sql/<dialect>/`` (the numbered files are the schema).
QUERY_FILES = ("queries.sql", "inspect.sql")


@cache
def load_queries(dialect: str) -> dict[str, str]:
    """The named queries of ``sql/<dialect>/queries.sql`` and ``inspect.sql``."""
    folder = resources.files("taskyard.backends.database").joinpath("sql", dialect)
    out: dict[str, str] = {}
    for file_name in QUERY_FILES:
        parts = _NAME.split(folder.joinpath(file_name).read_text())
        out.update(
            (name, body.strip()) for name, body in zip(parts[1::2], parts[2::2], strict=True)
        )
    return out


def schema_files(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, file name, SQL)`` of every schema file of ``dialect``, in order."""
    folder = resources.files("taskyard.backends.database").joinpath("sql", dialect)
    out = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_\w+\.sql$", entry.name)
        if match:
            out.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(out)


_COMMENT = re.compile(r"--[^\n]*")


def split_statements(sql: str) -> list[str]:
    """The statements of a schema or maintenance script (no semicolons inside statements)."""
    return [part.strip() for part in _COMMENT.sub("", sql).split(";") if part.strip()]


class NoAnswer(BackendUnavailable):
    """The database did not answer within the I/O timeout (a frozen server or network)."""


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return url


class Connector(ABC):
    """One database: per-thread connections and named queries."""

    dialect: str
    #: whether ``notify``/``wait_for_notification`` wake workers without polling
    has_notifications = False
    #: whether ``run_retrying`` retries on a fresh connection (a server can close idle ones)
    retries_stale_connections = False
    #: whether one statement outside a transaction is atomic and safe to run as it is
    single_statements_atomic = False

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = options
        self.queries = load_queries(self.dialect)
        self._local = threading.local()

    # -- connections ----------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any: ...

    def connection(self) -> Any:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn = conn
            local.pid = os.getpid()
        return conn

    def drop_connection(self) -> None:
        """Forget this thread's connection (after an error, or to reconnect)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        self.drop_connection()

    def thread_done(self) -> None:
        """A thread that used this connector is about to end: close its connection."""
        self.drop_connection()

    # -- running queries -------------------------------------------------------------------

    @abstractmethod
    def run(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a named query (in the current transaction, if any) and return its rows."""

    @abstractmethod
    def run_script(self, sql: str) -> None:
        """Run several statements without parameters (migrations), inside the current
        transaction if there is one (nothing commits implicitly)."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``)."""

    def run_retrying(self, name: str, params: Mapping[str, Any]) -> list[Row]:
        """Run an idempotent query, once more on a fresh connection if this thread's existing
        connection turned out to be stale (closed by the server meanwhile). A failure to
        connect, or a server that did not answer in time, is not retried: the caller's wait
        stays bounded by one timeout."""
        stale_possible = getattr(self._local, "conn", None) is not None
        try:
            return self.run(name, params)
        except NoAnswer:
            raise
        except BackendUnavailable:
            if not (stale_possible and self.retries_stale_connections):
                raise
            self.drop_connection()
            return self.run(name, params)

    @contextmanager
    def unbounded(self) -> Iterator[None]:
        """Inside the block, this thread's statements have no time limit (migrations)."""
        yield

    async def arun(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """``run()`` from an event loop. Here on a worker thread; PostgreSQL overrides it with
        an async connection (no thread hop)."""
        import asyncio

        return await asyncio.to_thread(self.run, name, params)

    @contextmanager
    def write(self) -> Iterator[None]:
        """Around one writing statement that must be atomic: PostgreSQL runs a single statement
        as its own transaction (no BEGIN/COMMIT round trips); SQLite needs ``BEGIN
        IMMEDIATE`` so a statement that reads before it writes cannot fail to upgrade its
        lock."""
        if self.single_statements_atomic:
            yield
        else:
            with self.transaction():
                yield

    # -- adaptation ----------------------------------------------------------------------------

    @abstractmethod
    def time(self, value: datetime | None) -> Any: ...

    @abstractmethod
    def parse_time(self, value: Any) -> datetime | None: ...

    @abstractmethod
    def ids(self, ids: Sequence[str]) -> Any: ...

    @abstractmethod
    def parse_json(self, value: Any) -> Any: ...

    def text_list(self, values: Sequence[str]) -> Any:
        return self.ids(values)

    def now(self) -> datetime:
        """The clock leases and availability are compared against."""
        return datetime.now(UTC)

    def wait_for_notification(self, timeout: float, stop: Callable[[], bool]) -> bool:
        """Block up to ``timeout`` for new work; True if woken by a notification."""
        time.sleep(timeout)
        return False

    def describe(self) -> str:
        return redact(self.url)


def make_connector(url: str, options: Mapping[str, Any], create: bool = False) -> Connector:
    """A connector for ``url``; ``create`` lets a SQLite connector create a missing file."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from taskyard.backends.database.sqlite import SQLiteConnector

        return SQLiteConnector(url, options, create)
    if scheme in ("postgres", "postgresql"):
        from taskyard.backends.database.postgres import PostgresConnector

        return PostgresConnector(url, options)
    raise InvalidTaskBackend(
        f"database URL {redact(url)!r}: unsupported scheme {scheme!r}; use sqlite:/// or "
        "postgresql://"
    )
