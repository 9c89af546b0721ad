"""The SQLite connector: a WAL file, ``BEGIN IMMEDIATE`` writes, a busy timeout waited once,
``PRAGMA data_version`` to notice other processes' commits, and files created only when
allowed."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import pathname2url

from taskyard.backends.database.connectors import Connector, Row, split_statements
from taskyard.exceptions import (
    BackendMissing,
    BackendUnavailable,
    CorruptTask,
    InvalidTaskBackend,
)

logger = logging.getLogger("taskyard.backends.database")


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
