"""PostgreSQL from an event loop without a thread hop: psycopg's ``AsyncConnection``, one per
event loop, for ``aenqueue()``, ``aget_result()`` and ``arefresh()`` (FastAPI, async Django
views, any asyncio service). Waits are bounded as on the sync path: the connect timeout, the
server's statement timeout, and ``io_timeout`` around each round trip on the client side."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskyard.exceptions import BackendUnavailable, CorruptTask, InvalidTaskBackend

if TYPE_CHECKING:
    from taskyard.backends.database.connectors import Row
    from taskyard.backends.database.postgres import PostgresConnector


class AsyncPostgres:
    """The async connections of one ``PostgresConnector`` (one per event loop)."""

    def __init__(self, connector: PostgresConnector) -> None:
        self.connector = connector
        self._conns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    async def _connection(self) -> Any:
        import psycopg

        loop = asyncio.get_running_loop()
        conn = self._conns.get(loop)
        if conn is not None and not conn.closed:
            return conn
        c = self.connector
        try:
            conn = await psycopg.AsyncConnection.connect(c.url, **c.connect_arguments())
        except psycopg.Error as exc:
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL at {c.describe()}: {exc}"
            ) from exc
        self._conns[loop] = conn
        # A loop that is closed and collected takes its connection with it.
        weakref.finalize(loop, _finish, conn)
        return conn

    def _forget(self) -> None:
        loop = asyncio.get_running_loop()
        conn = self._conns.pop(loop, None)
        if conn is not None:
            _finish(conn)

    async def run(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        import psycopg

        c = self.connector
        conn = await self._connection()
        # Past io_timeout the socket is shut down, so the pending read fails at once (cancelling
        # the coroutine instead would make psycopg wait on a cancel request the frozen server
        # never answers).
        fired: list[bool] = []
        timer = asyncio.get_running_loop().call_later(c.io_timeout, _shut_down, conn, fired)
        try:
            cursor = await conn.execute(c.queries[name], params or {})
            return await cursor.fetchall() if cursor.description else []
        except psycopg.errors.UndefinedTable as exc:
            raise InvalidTaskBackend(
                f"taskyard's tables are missing in {c.describe()}: run `taskyard migrate`"
            ) from exc
        except psycopg.DataError as exc:
            raise CorruptTask(f"PostgreSQL at {c.describe()} refused a task's data: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._forget()
            if fired:
                from taskyard.backends.database.connectors import NoAnswer

                raise NoAnswer(
                    f"PostgreSQL at {c.describe()} did not answer within {c.io_timeout:g}s "
                    "(STATEMENT_TIMEOUT + 2s)"
                ) from None
            raise BackendUnavailable(f"PostgreSQL at {c.describe()}: {exc}") from exc
        finally:
            timer.cancel()


def _shut_down(conn: Any, fired: list[bool]) -> None:
    from taskyard.backends.database.postgres import shut_down

    fired.append(True)
    shut_down(conn)


def _finish(conn: Any) -> None:
    """Close an async connection without its event loop (libpq's close is synchronous)."""
    try:
        if not conn.closed:
            conn.pgconn.finish()
    except Exception:
        pass
