"""The Database backend on Django's own connection (``OPTIONS["DATABASE"]``, default
``default``): the same SQL files and queries, run on the raw DB-API connection Django manages,
so a task enqueued inside ``transaction.atomic()`` exists exactly when the transaction commits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from taskyard.backends.base import Option
from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.connectors import Connector, Row, split_statements
from taskyard.backends.database.postgres import PostgresConnector
from taskyard.backends.database.sqlite import SQLiteConnector
from taskyard.exceptions import InvalidTaskBackend


class DjangoConnection:
    """Mixin running a connector's queries on Django's connection for ``alias``."""

    alias: str
    dialect: str
    queries: dict[str, str]

    def django(self) -> Any:
        from django.db import connections

        return connections[self.alias]

    def connection(self) -> Any:
        conn = self.django()
        conn.ensure_connection()
        return conn.connection

    def run(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        sql = self.queries[name]
        try:
            raw = self.connection()
            if self.dialect == "postgresql":
                from psycopg.rows import dict_row

                with raw.cursor(row_factory=dict_row) as cursor:
                    cursor.execute(sql, params or {})
                    return list(cursor.fetchall()) if cursor.description else []
            cursor = raw.execute(sql, params or {})
            names = [d[0] for d in cursor.description] if cursor.description else []
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as exc:
            raise self._translate_any(exc) from exc

    def run_script(self, sql: str) -> None:
        raw = self.connection()
        try:
            for statement in split_statements(sql):
                if self.dialect == "postgresql":
                    with raw.cursor() as cursor:
                        cursor.execute(statement)
                else:
                    raw.execute(statement)
        except Exception as exc:
            raise self._translate_any(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        from django.db import transaction, utils

        try:
            with transaction.atomic(using=self.alias):
                yield
        except (utils.OperationalError, utils.InterfaceError) as exc:
            # beginning or ending the transaction on a connection that went away
            raise self._translate_any(exc) from exc

    def drop_connection(self) -> None:
        """After an error on the raw connection: close it if it is unusable (Django's own
        cursors set ``errors_occurred``; queries on the raw connection must say so)."""
        conn = self.django()
        if not conn.in_atomic_block:
            conn.errors_occurred = True
            conn.close_if_unusable_or_obsolete()

    def close(self) -> None:
        """Django owns the connection: nothing to close (tests keep theirs)."""

    @contextmanager
    def unbounded(self) -> Iterator[None]:
        """Django owns the connection and its settings (timeouts included)."""
        yield

    async def arun(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Django's connections are sync: run on Django's thread for sync code, as its async
        ORM does (``sync_to_async``, thread-sensitive)."""
        from asgiref.sync import sync_to_async

        rows: list[Row] = await sync_to_async(self.run, thread_sensitive=True)(name, params)
        return rows

    def thread_done(self) -> None:
        conn = self.django()
        if not conn.in_atomic_block:
            conn.close()
        if getattr(self, "_listen_owner", None) == threading.get_ident():
            self.close_listener()  # type: ignore[attr-defined]

    def describe(self) -> str:
        return f"Django database {self.alias!r} ({self.dialect})"

    def _translate_any(self, exc: Exception) -> Exception:
        translate = getattr(super(), "_translate", None)
        if self.dialect == "sqlite" and translate is not None:
            import sqlite3

            if isinstance(exc, sqlite3.Error):
                return translate(exc)  # type: ignore[no-any-return]
        if self.dialect == "postgresql":
            import psycopg

            from taskyard.exceptions import BackendUnavailable

            if isinstance(exc, psycopg.errors.UndefinedTable):
                return InvalidTaskBackend(
                    f"taskyard's tables are missing in {self.describe()}: run `manage.py migrate`"
                )
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                self.drop_connection()
                return BackendUnavailable(f"{self.describe()}: {exc}")
        from django.db import utils

        if isinstance(exc, utils.OperationalError | utils.InterfaceError):
            # Django's own wrapping, e.g. of a failed connect in ensure_connection()
            from taskyard.exceptions import BackendUnavailable

            self.drop_connection()
            return BackendUnavailable(f"{self.describe()}: {exc}")
        return exc


class DjangoSQLiteConnector(DjangoConnection, SQLiteConnector):
    def __init__(self, alias: str) -> None:
        self.alias = alias
        Connector.__init__(self, f"django://{alias}", {})
        self.path = alias


class DjangoPostgresConnector(DjangoConnection, PostgresConnector):
    def __init__(self, alias: str) -> None:
        self.alias = alias
        Connector.__init__(self, f"django://{alias}", {})
        self._connect_timeout = 5
        self._listen_conn = None
        self._listen_owner = None

    def parse_json(self, value: Any) -> Any:
        # Django makes psycopg return jsonb as text (its JSONField decodes it)
        return json.loads(value) if isinstance(value, str | bytes) else value

    def _connect(self) -> Any:  # used only by the LISTEN connection
        import psycopg

        params = self.django().get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        return psycopg.connect(**params, autocommit=True)

    def wait_for_notification(self, timeout: float, stop: Any) -> bool:
        if self._listen_conn is None or self._listen_conn.closed:
            try:
                self._listen_conn = self._connect()
                self._listen_conn.execute("LISTEN taskyard")
                self._listen_owner = threading.get_ident()
            except Exception:
                self._listen_conn = None
                import time

                time.sleep(min(timeout, 1.0))
                return False
        return PostgresConnector.wait_for_notification(self, timeout, stop)


def django_connector(alias: str) -> Connector:
    """A connector on Django's database ``alias`` (PostgreSQL or SQLite)."""
    from django.db import connections

    if alias not in connections.settings:
        raise InvalidTaskBackend(
            f"{alias!r} is not a database alias in settings.DATABASES "
            f"({', '.join(connections.settings)})"
        )
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return DjangoPostgresConnector(alias)
    if vendor == "sqlite":
        return DjangoSQLiteConnector(alias)
    raise InvalidTaskBackend(
        f"database {alias!r} is {vendor}; taskyard's Database backend supports PostgreSQL and "
        "SQLite"
    )


class DjangoDatabaseBackend(DatabaseBackend):
    """taskyard's Database backend on Django's connection for ``OPTIONS["DATABASE"]``."""

    options_schema = {
        **{
            k: v
            for k, v in DatabaseBackend.options_schema.items()
            if k
            in ("RESULT_RETENTION", "FAILED_RETENTION", "MAX_INTERRUPTIONS", "ASYNC_CONCURRENCY")
        },
        "DATABASE": Option(str, "default", "the Django database alias holding the queue"),
        "AUTO_MIGRATE": Option(
            (bool, type(None)), False, "apply the schema on first use (manage.py migrate does)"
        ),
    }

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self.database: str = self.options["DATABASE"]
        self.url = f"django://{self.database}"

    @property
    def connector(self) -> Connector:
        connector = self._connector
        if connector is None:
            connector = self._connector = django_connector(self.database)
        if not self._schema_checked:
            self._check_schema(connector)
        return connector
