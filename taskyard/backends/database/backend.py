"""``DatabaseBackend``: a durable queue in SQLite (the embedded default) or PostgreSQL.

Tasks are rows of ``taskyard_task``; ``taskyard worker`` claims and runs them. This module is
the enqueue/result side; the worker-facing operations live in ``worker_ops.py``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskyard.backends.base import Backend, Option, not_negative, positive
from taskyard.backends.database.connectors import Connector, dumps, make_connector
from taskyard.backends.database.migrate import current_version, latest_version, migrate
from taskyard.backends.database.rows import result_from_row, task_overrides
from taskyard.backends.database.sqlite import SQLiteConnector, sqlite_path
from taskyard.exceptions import (
    InvalidTask,
    InvalidTaskBackend,
    TaskLimitError,
    TaskResultDoesNotExist,
)
from taskyard.tasks.execution import utcnow
from taskyard.tasks.hooks import announce_enqueued
from taskyard.tasks.results import TaskResult, TaskResultStatus, current_enqueuer, new_ids
from taskyard.tasks.task import PreparedCall, Task

_CANCELLED_BY_DEPENDENCY = (
    '[{"exception_class_path":"taskyard.exceptions.TaskCancelled",'
    '"traceback":"taskyard.exceptions.TaskCancelled: cancelled because dependency %s ended %s"}]'
)


def _synchronous(value: Any) -> str | None:
    ok = {"OFF", "NORMAL", "FULL", "EXTRA"}
    return None if str(value).upper() in ok else f"must be one of {sorted(ok)}"


#: the insert columns that depend only on the task (sent once per distinct task in a bulk)
_TASK_COLUMNS = (
    "task_path",
    "queue_name",
    "priority",
    "backend",
    "options",
    "run_after",
    "max_attempts",
    "limit_key",
    "qualifiers",
    "is_async",
)

#: one plain call of a bulk enqueue: the task's insert parameters, id, args and kwargs as JSON
_BulkRow = tuple[dict[str, Any], str, str | None, str | None]


class DatabaseBackend(Backend):
    """A durable queue in a database. ``OPTIONS["URL"]`` picks SQLite or PostgreSQL.

    Honours every option: priorities, ``run_after``, retries with backoff, timeouts,
    ``depends_on``, ``limit``/``limit_key`` (atomic under concurrent enqueuers), qualifiers,
    cancellation and progress. Results are readable from any process.
    """

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True
    supports_retries = True
    supports_timeout = True
    supports_depends_on = True
    supports_limit = True
    supports_qualifiers = True
    supports_cancel = True
    requires_importable_tasks = True

    options_schema = {
        "URL": Option(str, "sqlite:///taskyard.sqlite3", "sqlite:///file.db or postgresql://..."),
        "AUTO_MIGRATE": Option(
            (bool, type(None)),
            None,
            "apply the schema on first use (default: on for SQLite, off for PostgreSQL); "
            "True also lets the first use create a missing SQLite file",
        ),
        "BUSY_TIMEOUT": Option(float, 10.0, "SQLite: seconds to wait for a lock", positive),
        "SYNCHRONOUS": Option(
            str,
            "NORMAL",
            "SQLite: PRAGMA synchronous (NORMAL is durable in WAL mode "
            "against a crash of the process, FULL also against power loss)",
            _synchronous,
        ),
        "CONNECT_TIMEOUT": Option(int, 5, "PostgreSQL: seconds to wait for a connection", positive),
        "STATEMENT_TIMEOUT": Option(
            float,
            10.0,
            "PostgreSQL: seconds one statement may run (the server's statement_timeout); a "
            "server that stops answering gives BackendUnavailable after this plus 2 seconds",
            positive,
        ),
        "ASYNC_CONCURRENCY": Option(
            int,
            500,
            "async tasks a worker runs at once as coroutines on its event loop (0: on its "
            "threads, one event loop per task)",
            not_negative,
        ),
        "MAX_INTERRUPTIONS": Option(
            int,
            3,
            "times an attempt may be interrupted by its worker's death or shutdown and run "
            "again (not counted against retries) before the task ends FAILED (WorkerLost)",
            not_negative,
        ),
        "RESULT_RETENTION": Option(
            (float, type(None)),
            None,
            "seconds to keep finished results; workers delete older ones (None: keep)",
            positive,
        ),
        "FAILED_RETENTION": Option(
            (float, type(None)),
            None,
            "seconds to keep FAILED results (None: as RESULT_RETENTION)",
            positive,
        ),
    }

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        self.url: str = self.options.get("URL", "")
        self._connector: Connector | None = None
        self._schema_checked = False
        self._create: bool | None = None  # None: may_create() decides
        self._read_only = False
        self._lock = threading.Lock()
        self._static: dict[int, tuple[Task[Any, Any], dict[str, Any]]] = {}

    # -- the store ------------------------------------------------------------------------------

    @property
    def connector(self) -> Connector:
        """The database connector (created on first use; migrates SQLite on first use)."""
        connector = self._connector
        if connector is None:
            with self._lock:
                if self._connector is None:
                    self._connector = make_connector(
                        self.url, self.options, create=self.may_create()
                    )
                connector = self._connector
        if not self._schema_checked:
            self._check_schema(connector)
        return connector

    @property
    def dialect(self) -> str:
        return self.connector.dialect

    def _check_schema(self, connector: Connector) -> None:
        auto = self.options["AUTO_MIGRATE"]
        if auto is None:
            auto = connector.dialect == "sqlite"
        if auto and not self._read_only:
            migrate(connector)
        self._schema_checked = True

    # -- who may create a SQLite file ------------------------------------------------------------

    def may_create(self) -> bool:
        """May this backend create its missing SQLite file? Only when told to
        (``allow_create()``: ``taskyard migrate``, ``taskyard worker --create``), with an
        explicit ``AUTO_MIGRATE: True``, or for the embedded default ``./taskyard.sqlite3``.
        A missing directory is never created."""
        if self._create is not None:
            return self._create
        if self.options["AUTO_MIGRATE"] is True:
            return True
        return is_embedded_default(self.url)

    def allow_create(self) -> None:
        """Let this backend create its missing SQLite file (not its directory)."""
        self._create = True
        if isinstance(self._connector, SQLiteConnector):
            self._connector.create = True

    def open_existing(self) -> None:
        """Never create a SQLite file nor apply the schema: for ``status``, ``show``, ``list``,
        ``health`` and ``check``, which name a missing database instead."""
        self._create = False
        self._read_only = True
        if isinstance(self._connector, SQLiteConnector):
            self._connector.create = False

    def migrate(self) -> list[str]:
        """Apply the schema files not applied yet (creating a missing SQLite file, never its
        directory); return their names."""
        self.allow_create()
        self._schema_checked = True  # applied here, not by the first use's AUTO_MIGRATE
        return migrate(self.connector)

    def schema_status(self) -> tuple[int, int]:
        """(version in the database, latest version this taskyard ships)."""
        connector = self.connector
        return current_version(connector), latest_version(connector.dialect)

    def close(self) -> None:
        if self._connector is not None:
            self._connector.close()

    def check(self) -> list[str]:
        try:
            have, latest = self.schema_status()
        except Exception as exc:
            return [f"database {self._describe()} unreachable: {exc}"]
        if have < latest:
            return [
                f"database {self._describe()} has schema version {have}, taskyard needs "
                f"{latest}: run `taskyard migrate`"
            ]
        return []

    def _describe(self) -> str:
        from taskyard.backends.database.connectors import redact

        return redact(self.url)

    # -- enqueue -----------------------------------------------------------------------------------

    def _task_params(self, task: Task[Any, Any]) -> dict[str, Any]:
        """The insert parameters that depend only on the task (cached on the backend)."""
        cached = self._static.get(id(task))
        if cached is not None and cached[0] is task:
            return cached[1]
        qualifiers = dict(task.qualifiers) if task.qualifiers else None
        static = {
            "task_path": task.module_path,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "status": "READY",
            "backend": self.alias,
            "options": dumps(task_overrides(task)),
            "run_after": self.connector.time(task.run_after),
            "finished_at": None,
            "max_attempts": task.retries + 1,
            "depends_on": task.depends_on,
            "waiting_on": None,
            "limit_key": task.effective_limit_key,
            "qualifiers": dumps(qualifiers),
            "errors": "[]",
            "is_async": task.is_async,
        }
        if len(self._static) > 256:
            self._static.clear()
        self._static[id(task)] = (task, static)
        return static

    def _insert_params(
        self, task: Task[Any, Any], result: TaskResult[Any], enqueued_at: str | None = None
    ) -> dict[str, Any]:
        params = dict(self._task_params(task))
        params["id"] = result.id
        params["args"] = dumps(result.args) if result.args else "[]"
        params["kwargs"] = dumps(result.kwargs) if result.kwargs else "{}"
        params["enqueued_at"] = enqueued_at or self.connector.time(result.enqueued_at)
        params["enqueued_by"] = result.enqueued_by
        return params

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        self.validate_task(task)
        result = self.new_result(task, args, kwargs)
        params = self._insert_params(task, result)
        if task.depends_on is None and task.limit is None:
            self.connector.run_retrying("insert", params)
        else:
            with self.connector.transaction():
                self._admit(task, result, params)
                self.connector.run("insert", params)
        announce_enqueued(type(self), result)
        return result

    def enqueue_claimed(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        claim: Callable[[Connector, str], bool],
    ) -> TaskResult[Any] | None:
        """Enqueue ``task`` only if ``claim(connector, result_id)`` returns True, atomically.

        ``claim`` runs first, inside the same transaction as the insert (the cron scheduler
        records its claim on a tick there): either both are committed or neither is. Returns
        ``None``, inserting nothing, when ``claim`` returns False. Never retried on a fresh
        connection: a lost connection raises ``BackendUnavailable`` and the caller retries.
        """
        self.validate_task(task)
        result = self.new_result(task, args, kwargs)
        params = self._insert_params(task, result)
        c = self.connector
        with c.transaction():
            if not claim(c, result.id):
                return None
            if task.depends_on is not None or task.limit is not None:
                self._admit(task, result, params)
            c.run("insert", params)
        announce_enqueued(type(self), result)
        return result

    def _admit(self, task: Task[Any, Any], result: TaskResult[Any], params: dict[str, Any]) -> None:
        """Check ``limit`` and ``depends_on`` inside the enqueue transaction."""
        c = self.connector
        key = task.effective_limit_key
        if key is not None:
            if "lock_limit_key" in c.queries:
                c.run("lock_limit_key", {"key": key})
            pending = int(c.run("count_limit_key", {"key": key})[0]["pending"])
            if pending >= (task.limit or 0):
                raise TaskLimitError(
                    f"{task.module_path}: limit {task.limit} reached for key {key!r} "
                    f"({pending} pending in backend {self.alias!r})"
                )
        if task.depends_on is not None:
            try:
                dependency_id = _checked_id(task.depends_on)
            except TaskResultDoesNotExist:
                dependency_id = None
            rows = c.run("mark_dependency", {"id": dependency_id}) if dependency_id else []
            if not rows:
                raise InvalidTask(
                    f"{task.module_path}: depends_on={task.depends_on!r} is not a result in "
                    f"backend {self.alias!r}"
                )
            status = rows[0]["status"]
            if status in ("FAILED", "CANCELLED"):
                params["status"] = "CANCELLED"
                params["finished_at"] = c.time(utcnow())
                params["errors"] = _CANCELLED_BY_DEPENDENCY % (task.depends_on, status)
                result._status = TaskResultStatus.CANCELLED
                result._finished_at = utcnow()
            elif status != "SUCCESSFUL":
                params["waiting_on"] = task.depends_on

    def enqueue_many(self, calls: Sequence[PreparedCall]) -> list[TaskResult[Any]]:
        """Enqueue many calls in one transaction; plain ones in a single statement."""
        results: list[TaskResult[Any]] = []
        simple: list[_BulkRow] = []
        special: list[tuple[Task[Any, Any], TaskResult[Any], dict[str, Any]]] = []
        now, enqueuer = utcnow(), current_enqueuer()  # one transaction: one enqueue time
        now_text = self.connector.time(now)
        calls = list(calls)
        for call, result_id in zip(calls, new_ids(len(calls)), strict=True):
            task = call.task
            self.validate_task(task)
            result = self.new_result(
                task,
                call.args,
                call.kwargs,
                normalized=True,
                enqueued_at=now,
                enqueued_by=enqueuer,
                result_id=result_id,
            )
            results.append(result)
            if task.depends_on is None and task.limit is None:
                args = dumps(result.args) if result.args else "[]"
                kwargs = dumps(result.kwargs) if result.kwargs else "{}"
                simple.append((self._task_params(task), result.id, args, kwargs))
            else:
                special.append((task, result, self._insert_params(task, result, now_text)))
        c = self.connector
        with c.transaction():
            if simple:
                self._insert_many(simple, now_text, enqueuer)
            for task, result, params in special:
                self._admit(task, result, params)
                c.run("insert", params)
        sender = type(self)
        for result in results:
            announce_enqueued(sender, result)
        return results

    def _insert_many(
        self,
        rows: list[_BulkRow],
        enqueued_at: Any,
        enqueuer: str,
    ) -> None:
        """PostgreSQL: one statement; the columns that come from the task are sent once per
        distinct task (``groups``), not once per row: binding array elements is most of the
        cost. SQLite: ``executemany`` with positional parameters (faster than named ones)."""
        c = self.connector
        if c.dialect == "postgresql":
            groups: dict[int, int] = {}
            statics: list[dict[str, Any]] = []
            ids, args, kwargs, group_of = [], [], [], []
            for static, id_, a, k in rows:
                index = groups.get(id(static))
                if index is None:
                    index = groups[id(static)] = len(statics) + 1
                    statics.append(static)
                ids.append(id_)
                args.append(a)
                kwargs.append(k)
                group_of.append(index)
            params: dict[str, Any] = {name: [g[name] for g in statics] for name in _TASK_COLUMNS}
            params.update(
                id=ids,
                args=args,
                kwargs=kwargs,
                task_group=group_of,
                enqueued_at=enqueued_at,
                enqueued_by=enqueuer,
            )
            c.run("insert_many", params)
            return
        import sqlite3

        table = [
            (id_, *[static[n] for n in _TASK_COLUMNS], a, k, enqueued_at, enqueuer)
            for static, id_, a, k in rows
        ]
        try:
            c.connection().executemany(c.queries["insert_many"], table)
        except sqlite3.Error as exc:
            raise c._translate(exc) from exc  # type: ignore[attr-defined]

    async def aenqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        """``enqueue()`` from an event loop: on PostgreSQL without a thread hop (an async
        connection); a task with ``depends_on`` or ``limit`` (a transaction) and SQLite go
        through a worker thread."""
        if task.depends_on is not None or task.limit is not None:
            return await super().aenqueue(task, args, kwargs)
        self.validate_task(task)
        result = self.new_result(task, args, kwargs)
        await self.connector.arun("insert", self._insert_params(task, result))
        announce_enqueued(type(self), result)
        return result

    # -- results --------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult[Any]:
        rows = self.connector.run_retrying("get", {"id": _checked_id(result_id)})
        if not rows:
            raise TaskResultDoesNotExist(f"no result {result_id!r} in backend {self.alias!r}")
        return result_from_row(rows[0], self.connector, self)

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        rows = await self.connector.arun("get", {"id": _checked_id(result_id)})
        if not rows:
            raise TaskResultDoesNotExist(f"no result {result_id!r} in backend {self.alias!r}")
        return result_from_row(rows[0], self.connector, self)

    async def arefresh_result(self, result: TaskResult[Any]) -> None:
        result._copy_from(await self.aget_result(result.id))

    def cancel(self, result: TaskResult[Any]) -> bool:
        c = self.connector
        ids = {"id": _checked_id(result.id), "now": c.time(utcnow())}
        with c.transaction():
            rows = c.run("cancel_ready", ids)
            if rows:
                if rows[0]["has_dependents"]:
                    c.run("cancel_dependents", {"ids": c.ids([result.id]), "now": ids["now"]})
                done = True
            else:
                done = bool(c.run("request_cancel", ids))
        self.refresh_result(result)
        if done and result.status is TaskResultStatus.CANCELLED:
            from taskyard.tasks.hooks import announce_finished

            announce_finished(type(self), result)
        return done

    def retry(self, result_id: str, attempts: int = 1) -> bool:
        """Put a FAILED or CANCELLED task back in the queue with ``attempts`` more attempts."""
        c = self.connector
        rows = c.run(
            "retry_task",
            {"id": _checked_id(result_id), "attempts": attempts, "now": c.time(utcnow())},
        )
        return bool(rows)

    def delete(self, result_id: str) -> bool:
        """Delete a task row that is not running."""
        return bool(self.connector.run("delete_task", {"id": _checked_id(result_id)}))


def is_embedded_default(url: str) -> bool:
    """Is ``url`` the embedded default, ``taskyard.sqlite3`` in the current directory?"""
    if not url.lower().startswith("sqlite:"):
        return False
    try:
        return os.path.normpath(sqlite_path(url)) == "taskyard.sqlite3"
    except InvalidTaskBackend:
        return False


def _checked_id(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise TaskResultDoesNotExist(f"{value!r} is not a task result id") from None


def database_backend(alias: str = "default") -> DatabaseBackend:
    """The configured ``DatabaseBackend`` under ``alias`` (``InvalidTaskBackend`` otherwise)."""
    from taskyard.config import backends

    backend = backends[alias]
    if not isinstance(backend, DatabaseBackend):
        raise InvalidTaskBackend(
            f"backend {alias!r} is {type(backend).__name__}, not the Database backend"
        )
    return backend
