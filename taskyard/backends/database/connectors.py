"""Connections to SQLite and PostgreSQL: named queries, transactions, type adaptation.

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
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit
from urllib.request import pathname2url

from taskyard.exceptions import (
    BackendMissing,
    BackendUnavailable,
    CorruptTask,
    InvalidTaskBackend,
)
from taskyard.tasks.deadlines import DEADLINES

if TYPE_CHECKING:
    from taskyard.backends.database.aio import AsyncPostgres

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


def shut_down(conn: Any) -> None:
    """Shut a psycopg connection's socket down: a call blocked reading from it fails at once
    (how a round trip is bounded when the server does not answer)."""
    with suppress(Exception):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


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


# -- SQLite ------------------------------------------------------------------------------------


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidTaskBackend(
            f"SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise InvalidTaskBackend(
            f"SQLite URL {url!r}: give a file path; an in-memory database cannot be shared "
            "between workers"
        )
    return path


class SQLiteConnector(Connector):
    """A SQLite file. It opens an existing file only, unless ``create`` is true (then it may
    create the file, never its directory): see ``_connect``."""

    dialect = "sqlite"
    #: may a missing file be created? (``taskyard migrate``, ``worker --create``...)
    create = False

    def __init__(self, url: str, options: Mapping[str, Any], create: bool = False) -> None:
        super().__init__(url, options)
        self.path = sqlite_path(url)
        self.create = create
        self._busy_timeout = float(options.get("BUSY_TIMEOUT", 10.0))
        self._synchronous = str(options.get("SYNCHRONOUS", "NORMAL"))

    def _connect(self) -> sqlite3.Connection:
        path = os.path.abspath(self.path)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise BackendMissing(
                f"SQLite database {path}: the directory {directory} does not exist (taskyard "
                "never creates directories: check the path, or create the directory)"
            )
        if not self.create and not os.path.exists(path):
            raise BackendMissing(
                f"SQLite database {path} does not exist: check the path, or create it with "
                f"`taskyard migrate --url {self.url}`"
            )
        mode = "rwc" if self.create else "rw"
        try:
            conn = sqlite3.connect(
                f"file:{pathname2url(path)}?mode={mode}",
                uri=True,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"SQLite database {path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._enable_wal(conn)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.row_factory = _dict_row
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new database file to WAL (a persistent setting: once per file).

        SQLite does not wait on its busy timeout for this switch: it fails at once while
        another connection writes (say, a second process migrating the same new file), so
        wait here, up to the same timeout.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def run(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            rows: list[Row] = self.connection().execute(self.queries[name], params or {}).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def run_script(self, sql: str) -> None:
        try:
            conn = self.connection()
            for statement in split_statements(sql):
                conn.execute(statement)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.connection()
        if conn.in_transaction:
            yield
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _translate(self, exc: sqlite3.Error) -> Exception:
        message = str(exc)
        if "no such table" in message:
            return InvalidTaskBackend(
                f"taskyard's tables are missing in {self.path}: run `taskyard migrate` ({message})"
            )
        if "malformed JSON" in message or "JSON cannot hold" in message:
            return CorruptTask(f"SQLite database {self.path}: a task's stored data: {message}")
        if isinstance(exc, sqlite3.OperationalError):
            return BackendUnavailable(f"SQLite database {self.path}: {message}")
        return exc

    def time(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def parse_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):  # Django's connection converts declared datetimes
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def ids(self, ids: Sequence[str]) -> str:
        return json.dumps(list(ids))

    def parse_json(self, value: Any) -> Any:
        return None if value is None else json.loads(value)

    def lease_until(self, seconds: float) -> str | None:
        return self.time(self.now() + timedelta(seconds=seconds))

    def data_version(self) -> int:
        row = self.connection().execute("PRAGMA data_version").fetchone()
        return int(row["data_version"] if isinstance(row, dict) else row[0])

    def wait_for_notification(self, timeout: float, stop: Callable[[], bool]) -> bool:
        """Poll ``PRAGMA data_version`` (cheap: no disk read) until another connection commits."""
        deadline = time.monotonic() + timeout
        try:
            start = self.data_version()
        except sqlite3.Error:
            time.sleep(timeout)
            return False
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
            if self.data_version() != start:
                return True
        return False


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


# -- PostgreSQL ---------------------------------------------------------------------------------


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise InvalidTaskBackend(
            "the PostgreSQL database backend needs psycopg 3: pip install 'taskyard[postgres]'"
        ) from exc
    return psycopg


class PostgresConnector(Connector):
    """PostgreSQL through psycopg 3. Every wait is bounded: ``CONNECT_TIMEOUT`` to connect, the
    server's ``statement_timeout`` (``STATEMENT_TIMEOUT``) for a statement, and on the client
    side ``STATEMENT_TIMEOUT`` + 2 s for any round trip, after which the connection is shut
    down and ``NoAnswer`` (a ``BackendUnavailable``) raised: a frozen server or a silent network
    cannot hang a caller. TCP keepalives detect dead peers on idle connections."""

    dialect = "postgresql"
    has_notifications = True
    retries_stale_connections = True
    single_statements_atomic = True

    KEEPALIVES: ClassVar[dict[str, Any]] = {
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3
    }  # fmt: skip
    CLIENT_MARGIN = 2.0

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self._connect_timeout = int(options.get("CONNECT_TIMEOUT", 5))
        self._statement_timeout = float(options.get("STATEMENT_TIMEOUT", 10.0))
        self._async: AsyncPostgres | None = None
        self._listen_conn: Any = None
        self._listen_owner: int | None = None

    @property
    def io_timeout(self) -> float:
        """Seconds a round trip may take before the server counts as not answering."""
        return self._statement_timeout + self.CLIENT_MARGIN

    async def arun(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        if self._async is None:
            from taskyard.backends.database.aio import AsyncPostgres

            self._async = AsyncPostgres(self)
        return await self._async.run(name, params)

    def connect_arguments(self) -> dict[str, Any]:
        """What every connection of this connector is opened with (the async ones too)."""
        from psycopg.rows import dict_row

        return {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": self._connect_timeout,
            "application_name": "taskyard",
            "options": f"-c statement_timeout={int(self._statement_timeout * 1000)}",
            **self.KEEPALIVES,
        }

    def _connect(self) -> Any:
        psycopg = _psycopg()
        try:
            return psycopg.connect(self.url, **self.connect_arguments())
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL at {self.describe()}: {exc}"
            ) from exc

    @contextmanager
    def _bounded(self, conn: Any) -> Iterator[list[bool]]:
        """Shut ``conn``'s socket down if the block outlasts ``io_timeout`` (the blocked call
        then fails at once); the list yielded becomes ``[True]`` when that happened."""
        fired: list[bool] = []
        if getattr(self._local, "unbounded", False):
            yield fired
            return

        def expire() -> None:
            fired.append(True)
            shut_down(conn)

        token = DEADLINES.schedule(self.io_timeout, expire)
        try:
            yield fired
        finally:
            DEADLINES.cancel(token)

    def _unavailable(self, exc: Exception, fired: list[bool]) -> BackendUnavailable:
        self.drop_connection()
        if fired:
            return NoAnswer(
                f"PostgreSQL at {self.describe()} did not answer within {self.io_timeout:g}s "
                "(STATEMENT_TIMEOUT + 2s)"
            )
        return BackendUnavailable(f"PostgreSQL at {self.describe()}: {exc}")

    def run(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        psycopg = _psycopg()
        conn = self.connection()
        with self._bounded(conn) as fired:
            try:
                cursor = conn.execute(self.queries[name], params or {})
                return cursor.fetchall() if cursor.description else []
            except psycopg.errors.UndefinedTable as exc:
                raise InvalidTaskBackend(
                    f"taskyard's tables are missing in {self.describe()}: run `taskyard migrate`"
                ) from exc
            except psycopg.DataError as exc:
                raise CorruptTask(
                    f"PostgreSQL at {self.describe()} refused a task's data: {exc}"
                ) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise self._unavailable(exc, fired) from exc

    def run_script(self, sql: str) -> None:
        psycopg = _psycopg()
        conn = self.connection()
        with self._bounded(conn) as fired:
            try:
                conn.execute(sql)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise self._unavailable(exc, fired) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        psycopg = _psycopg()
        conn = self.connection()
        with self._bounded(conn) as fired:
            try:
                with conn.transaction():
                    yield
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise self._unavailable(exc, fired) from exc

    @contextmanager
    def unbounded(self) -> Iterator[None]:
        self._local.unbounded = True
        try:
            self.run_script("SET statement_timeout = 0")
            yield
        finally:
            self._local.unbounded = False
            with suppress(BackendUnavailable):
                self.run_script("RESET statement_timeout")

    def time(self, value: datetime | None) -> datetime | None:
        return value

    def parse_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def ids(self, ids: Sequence[str]) -> list[str]:
        return list(ids)

    def parse_json(self, value: Any) -> Any:
        return value

    def wait_for_notification(self, timeout: float, stop: Callable[[], bool]) -> bool:
        """Wait on ``LISTEN taskyard`` (a dedicated connection) for up to ``timeout``."""
        psycopg = _psycopg()
        try:
            if self._listen_conn is None or self._listen_conn.closed:
                self._listen_conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=self._connect_timeout,
                    application_name="taskyard-listen",
                    **self.KEEPALIVES,
                )
                self._listen_conn.execute("LISTEN taskyard")
                self._listen_owner = threading.get_ident()
            for _ in self._listen_conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            logger.warning("LISTEN connection to %s failed: %s", self.describe(), exc)
            self.close_listener()
            time.sleep(min(timeout, 1.0))
            return False

    def thread_done(self) -> None:
        super().thread_done()
        if self._listen_owner == threading.get_ident():
            self.close_listener()

    def close_listener(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        super().close()
        self.close_listener()


def make_connector(url: str, options: Mapping[str, Any], create: bool = False) -> Connector:
    """A connector for ``url``; ``create`` lets a SQLite connector create a missing file."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return SQLiteConnector(url, options, create)
    if scheme in ("postgres", "postgresql"):
        return PostgresConnector(url, options)
    raise InvalidTaskBackend(
        f"database URL {redact(url)!r}: unsupported scheme {scheme!r}; use sqlite:/// or "
        "postgresql://"
    )
