"""The PostgreSQL connector (psycopg 3): bounded waits, LISTEN/NOTIFY wake-ups, an async path."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from taskyard.backends.database.connectors import Connector, NoAnswer, Row
from taskyard.exceptions import (
    BackendUnavailable,
    CorruptTask,
    InvalidTaskBackend,
)
from taskyard.tasks.deadlines import DEADLINES

if TYPE_CHECKING:
    from taskyard.backends.database.aio import AsyncPostgres

logger = logging.getLogger("taskyard.backends.database")


def shut_down(conn: Any) -> None:
    """Shut a psycopg connection's socket down: a call blocked reading from it fails at once
    (how a round trip is bounded when the server does not answer)."""
    with suppress(Exception):
        dup = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


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
