"""taskyard's Database backend on PostgreSQL and on SQLite, with ``taskyard worker``."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.harness import pg, pg_emptied
from bench.peers.base import IoMode, Subject, stamped_call, timed_calls

PREFILLED = "bench.prefilled_history"
# A claim is a started attempt: a worker claims at most one task per free thread, so for
# no-op tasks the thread count is the batch size (32 threads keep the claim batches large).
THREADS, BATCH = 32, 100

_active: dict[str, Any] = {"url": None, "backend": None}


def activate(url: str) -> Any:
    """Point taskyard's default alias at ``url`` (once per switch) and return the backend."""
    if _active["url"] != url:
        from urllib.parse import parse_qsl

        import taskyard
        from taskyard.config import backends

        base, _, query = url.partition("?")
        options: dict[str, Any] = {"URL": base}
        for name, value in parse_qsl(query):
            options[name.upper()] = float(value) if value.replace(".", "", 1).isdigit() else value
        if not url.startswith("redis"):
            options["AUTO_MIGRATE"] = True
        backend_path = (
            "taskyard.backends.redis.RedisBackend"
            if url.startswith("redis")
            else "taskyard.backends.database.DatabaseBackend"
        )
        taskyard.configure({"default": {"BACKEND": backend_path, "QUEUES": [], "OPTIONS": options}})
        _active["url"], _active["backend"] = url, backends["default"]
        if hasattr(_active["backend"], "migrate"):
            _active["backend"].migrate()
    return _active["backend"]


def enqueue_bulk(n: int, chunk: int = 5000) -> float:
    import taskyard
    from bench.core_tasks import noop

    prepare = noop.prepare
    started = time.perf_counter()
    for start in range(0, n, chunk):
        taskyard.enqueue_many(prepare() for _ in range(min(chunk, n - start)))
    return time.perf_counter() - started


def enqueue_one(n: int) -> float:
    from bench.core_tasks import noop

    return timed_calls(noop.enqueue, n)


def enqueue_stamp(token: int, port: int) -> float:
    from bench.core_tasks import stamp

    return stamped_call(stamp.enqueue, token, port)


def enqueue_astamp(token: int, port: int) -> float:
    from bench.core_tasks import astamp

    return stamped_call(astamp.enqueue, token, port)


def io_fill(n: int, kind: str, seconds: float, chunk: int = 5000) -> None:
    import taskyard
    from bench.core_tasks import sleep_async, sleep_sync

    prepare = (sleep_async if kind == "async" else sleep_sync).prepare
    for start in range(0, n, chunk):
        taskyard.enqueue_many(prepare(seconds) for _ in range(min(chunk, n - start)))


def fill_ids(n: int, chunk: int = 5000) -> None:
    import taskyard
    from bench.core_tasks import noop_id

    for start in range(0, n, chunk):
        taskyard.enqueue_many(noop_id.prepare(i) for i in range(start, min(n, start + chunk)))


class TaskyardClient(Subject):
    """A taskyard subject: enqueues through taskyard's own API on ``backend()``."""

    def backend(self) -> Any:
        raise NotImplementedError

    def enqueue_one(self, n: int) -> float:
        self.backend()
        return enqueue_one(n)

    def enqueue_bulk(self, n: int) -> float | None:
        self.backend()
        return enqueue_bulk(n)

    def enqueue_stamp(self, token: int, port: int) -> float:
        self.backend()
        return enqueue_stamp(token, port)

    def enqueue_astamp(self, token: int, port: int) -> float:
        """Enqueue one latency probe that is an async task."""
        self.backend()
        return enqueue_astamp(token, port)

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        self.backend()
        io_fill(n, kind, seconds)

    def fill_ids(self, n: int) -> None:
        self.backend()
        fill_ids(n)


class TaskyardPostgres(TaskyardClient):
    key = "taskyard-pg"
    label = "taskyard Database, PostgreSQL"
    ours = True
    store = "postgresql"
    burst = True
    history = True
    scaleout = True
    worker_note = f"taskyard worker, {THREADS} threads, batch {BATCH}"

    @property
    def url(self) -> str:
        return self.ctx.pg_url

    def backend(self) -> Any:
        return activate(self.url)

    def prepare(self) -> None:
        self.backend()

    def reset(self) -> None:
        self.backend()
        pg("DELETE FROM taskyard_worker")
        pg_emptied(f"DELETE FROM taskyard_task WHERE task_path <> '{PREFILLED}'", "taskyard_task")

    def worker_argv(self, burst: bool) -> list[str]:
        argv = [sys.executable, "-m", "taskyard", "worker", "--url", self.url, "--queues", "*"]
        argv += ["--threads", str(THREADS), "--batch-size", str(BATCH)]
        argv += ["--import", "bench.core_tasks", "--log-level", "WARNING"]
        return [*argv, "--burst"] if burst else argv

    def io_modes(self) -> list[IoMode]:
        base = [sys.executable, "-m", "taskyard", "worker", "--url", self.url, "--queues", "*"]
        base += ["--batch-size", str(BATCH), "--import", "bench.core_tasks"]
        base += ["--log-level", "WARNING"]
        return [
            IoMode(
                "async",
                "",
                "",
                (250, 500, 1000),
                lambda c: [*base, "--async-concurrency", str(c)],
                lambda c: f"taskyard worker --async-concurrency {c}",
            ),
            IoMode(
                "sync",
                "",
                "",
                (100,),
                lambda c: [*base, "--threads", str(c)],
                lambda c: f"taskyard worker --threads {c}",
            ),
        ]

    def done_count(self) -> int:
        return int(
            pg(
                "SELECT count(*) FROM taskyard_task WHERE status = 'SUCCESSFUL' "
                f"AND task_path <> '{PREFILLED}'"
            )[0][0]
        )

    def span(self) -> tuple[int, float]:
        rows = pg(
            "SELECT count(*), EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) "
            f"FROM taskyard_task WHERE status = 'SUCCESSFUL' AND task_path <> '{PREFILLED}'"
        )
        return int(rows[0][0]), float(rows[0][1] or 0)

    def prefill_history(self, rows: int) -> None:
        self.backend()
        pg(f"""INSERT INTO taskyard_task (id, task_path, queue_name, priority, status, backend,
                enqueued_at, available_at, started_at, finished_at, attempts, max_attempts)
             SELECT gen_random_uuid(), '{PREFILLED}', 'default', 0, 'SUCCESSFUL',
                    'default', now() - interval '1 day', now() - interval '1 day',
                    now() - interval '1 day', now() - interval '1 day', 1, 1
             FROM generate_series(1, {rows})""")
        pg("VACUUM ANALYZE taskyard_task")

    def drop_history(self) -> None:
        pg(f"DELETE FROM taskyard_task WHERE task_path = '{PREFILLED}'")
        pg("VACUUM ANALYZE taskyard_task")

    def versions(self) -> str:
        import psycopg

        return f"psycopg {psycopg.__version__}"


class TaskyardSQLite(TaskyardPostgres):
    key = "taskyard-sqlite"
    label = "taskyard Database, SQLite"
    store = "sqlite"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.ctx.tmp}/taskyard.sqlite3"

    def _sql(self, sql: str) -> list[Any]:
        import sqlite3

        self.backend()  # the schema exists
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
        try:
            rows = conn.execute(sql).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def reset(self) -> None:
        self._sql(f"DELETE FROM taskyard_task WHERE task_path <> '{PREFILLED}'")
        self._sql("DELETE FROM taskyard_worker")

    def done_count(self) -> int:
        return int(
            self._sql(
                "SELECT count(*) FROM taskyard_task WHERE status = 'SUCCESSFUL' "
                f"AND task_path <> '{PREFILLED}'"
            )[0][0]
        )

    def span(self) -> tuple[int, float]:
        backend = self.backend()
        row = self._sql(
            "SELECT count(*), min(started_at), max(finished_at) FROM taskyard_task "
            f"WHERE status = 'SUCCESSFUL' AND task_path <> '{PREFILLED}'"
        )[0]
        start = backend.connector.parse_time(row[1])
        end = backend.connector.parse_time(row[2])
        return int(row[0]), (end - start).total_seconds() if start and end else 0.0

    def prefill_history(self, rows: int) -> None:
        self._sql(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                      WHERE i < {rows})
            INSERT INTO taskyard_task (id, task_path, queue_name, priority, status, backend,
                enqueued_at, available_at, started_at, finished_at, attempts, max_attempts)
            SELECT lower(hex(randomblob(16))), '{PREFILLED}', 'default', 0, 'SUCCESSFUL',
                'default', '2020-01-01 00:00:00.000000', '2020-01-01 00:00:00.000000',
                '2020-01-01 00:00:00.000000', '2020-01-01 00:00:00.000000', 1, 1 FROM n""")
        self._sql("ANALYZE")

    def drop_history(self) -> None:
        self._sql(f"DELETE FROM taskyard_task WHERE task_path = '{PREFILLED}'")
        self._sql("ANALYZE")

    def versions(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
