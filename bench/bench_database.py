"""Database backend benchmark: taskyard on PostgreSQL and SQLite beside django-tasks-db.

Run with ``make bench-db``. Same machine, same PostgreSQL, one worker process each, no-op tasks.

Scenarios (medians of ``--repeats`` runs, with min and max):
  * bulk enqueue (``enqueue_many``) and single enqueue, tasks per second;
  * drain: ``--n`` tasks already queued, one worker process; the rate is tasks divided by the
    time from the first start to the last finish recorded in the database (process start-up
    excluded, for every subject alike);
  * drain with 1,000,000 finished rows already in the table (PostgreSQL);
  * idle pickup latency: a running idle worker, tasks enqueued one at a time 20 ms apart;
    enqueue-to-start, median and 99th percentile;
  * SQL statements per task (counted by taskyard's connector) and transactions per task
    (PostgreSQL's ``pg_stat_database.xact_commit``, for every subject).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, machine, print_table  # noqa: E402

PG_URL = os.environ.get(
    "TASKYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/taskyard_bench"
)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _pg(sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def ensure_database() -> None:
    """Create the benchmark's own database (so it never touches the tests' one)."""
    import psycopg
    from psycopg import sql

    name = PG_URL.rsplit("/", 1)[1].split("?")[0]
    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _xacts() -> int:
    return int(
        _pg("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]
    )


# -- taskyard ---------------------------------------------------------------------------------


def _configure(url: str) -> Any:
    import taskyard
    from taskyard.config import backends

    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"URL": url, "AUTO_MIGRATE": True},
            }
        }
    )
    backend = backends["default"]
    backend.migrate()
    return backend


def _reset_taskyard(url: str) -> Any:
    backend = _configure(url)
    backend.connector.run_script("DELETE FROM taskyard_task; DELETE FROM taskyard_worker")
    return backend


def _fill(n: int) -> None:
    import taskyard
    from bench.core_tasks import noop

    for start in range(0, n, 5000):
        taskyard.enqueue_many(noop.prepare() for _ in range(min(5000, n - start)))


PREFILLED = "bench.prefilled_history"
_MEASURED = f"task_path <> '{PREFILLED}'"


def _span(backend: Any) -> tuple[int, float]:
    """(finished tasks, seconds from the first start to the last finish)."""
    if backend.dialect == "postgresql":
        rows = _pg(
            "SELECT count(*), EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) "
            f"FROM taskyard_task WHERE status = 'SUCCESSFUL' AND {_MEASURED}"
        )
        return int(rows[0][0]), float(rows[0][1])
    row = (
        backend.connector.connection()
        .execute(
            "SELECT count(*) AS n, min(started_at) AS a, max(finished_at) AS b FROM taskyard_task "
            f"WHERE status = 'SUCCESSFUL' AND {_MEASURED}"
        )
        .fetchone()
    )
    start = backend.connector.parse_time(row["a"])
    end = backend.connector.parse_time(row["b"])
    return int(row["n"]), (end - start).total_seconds()


def taskyard_drain(url: str, n: int, threads: int, batch: int, keep_history: bool = False) -> float:
    if keep_history:  # keep the prefilled finished rows, drop the previous run's
        backend = _configure(url)
        _pg(f"DELETE FROM taskyard_task WHERE {_MEASURED}")
    else:
        backend = _reset_taskyard(url)
    _fill(n)
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskyard",
            "worker",
            "--url",
            url,
            "--burst",
            "--queues",
            "*",
            "--threads",
            str(threads),
            "--batch-size",
            str(batch),
            "--import",
            "bench.core_tasks",
            "--log-level",
            "WARNING",
        ],
        env=ENV,
        cwd=ROOT,
        check=True,
    )
    del worker
    done, seconds = _span(backend)
    assert done == n, f"{done} of {n} tasks finished"
    return n / seconds


def _prefill_finished(rows: int) -> None:
    _pg(f"""INSERT INTO taskyard_task (id, task_path, queue_name, priority, status, backend,
            enqueued_at, available_at, started_at, finished_at, attempts, max_attempts)
         SELECT gen_random_uuid(), '{PREFILLED}', 'default', 0, 'SUCCESSFUL',
                'default', now() - interval '1 day', now() - interval '1 day',
                now() - interval '1 day', now() - interval '1 day', 1, 1
         FROM generate_series(1, {rows})""")
    _pg("ANALYZE taskyard_task")


def taskyard_enqueue_rates(url: str, n: int) -> tuple[float, float]:
    from bench.core_tasks import noop

    _reset_taskyard(url)
    started = time.perf_counter()
    _fill(n)
    bulk = n / (time.perf_counter() - started)
    single_n = min(n, 3000)
    started = time.perf_counter()
    for _ in range(single_n):
        noop.enqueue()
    return bulk, single_n / (time.perf_counter() - started)


def taskyard_latency(url: str, samples: int) -> list[float]:
    from bench.core_tasks import noop

    backend = _reset_taskyard(url)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskyard",
            "worker",
            "--url",
            url,
            "--queues",
            "*",
            "--threads",
            "2",
            "--interval",
            "1",
            "--import",
            "bench.core_tasks",
            "--log-level",
            "WARNING",
        ],
        env=ENV,
        cwd=ROOT,
    )
    try:
        time.sleep(1.5)
        latencies = []
        for _ in range(samples):
            result = noop.enqueue()
            result.wait(10)
            latencies.append((result.started_at - result.enqueued_at).total_seconds() * 1000)
            time.sleep(0.02)
        return latencies
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        del backend


def taskyard_statements(url: str, n: int) -> tuple[float, float]:
    """(SQL statements, transactions) per task for an in-process burst drain of ``n`` tasks."""
    from taskyard.backends.database.connectors import Connector
    from taskyard.worker.worker import Worker, WorkerConfig

    backend = _reset_taskyard(url)
    _fill(n)
    counts = {"statements": 0}
    cls = type(backend.connector)
    original, original_tx = cls.run, cls.transaction

    def counting(self: Connector, name: str, params: Any = None) -> Any:
        counts["statements"] += 1
        return original(self, name, params)

    from contextlib import contextmanager

    @contextmanager
    def counting_tx(self: Connector) -> Any:
        counts["statements"] += 2  # BEGIN and COMMIT
        with original_tx(self):
            yield

    cls.run = counting  # type: ignore[method-assign]
    cls.transaction = counting_tx  # type: ignore[method-assign]
    before = _xacts() if backend.dialect == "postgresql" else 0
    try:
        Worker(
            backend,
            WorkerConfig(queues=None, threads=4, batch_size=100, burst=True, handle_signals=False),
        ).run()
    finally:
        cls.run = original  # type: ignore[method-assign]
        cls.transaction = original_tx  # type: ignore[method-assign]
    if backend.dialect == "postgresql":
        time.sleep(1.5)  # PostgreSQL publishes transaction counts with a delay of up to 1 s
    xacts = (_xacts() - before) if backend.dialect == "postgresql" else float("nan")
    return counts["statements"] / n, xacts / n


# -- django-tasks-db ----------------------------------------------------------------------------


def _peer_available() -> bool:
    try:
        import django  # noqa: F401
        import django_tasks_db  # noqa: F401
    except ImportError:
        return False
    return True


def _peer(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **ENV,
        "DJANGO_SETTINGS_MODULE": "bench.peers.dtdb_settings",
        "BENCH_POSTGRES_URL": PG_URL,
    }
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=ROOT,
        check=check,
        capture_output=True,
        text=True,
    )


def peer_drain(n: int) -> tuple[float, float]:
    _peer("migrate", "--noinput")
    _pg("DELETE FROM django_tasks_database_dbtaskresult")
    _peer("shell", "-c", f"from bench.peers.dtdb_fill import fill; fill({n})")
    before = _xacts()
    _peer("db_worker", "--batch", "--no-startup-delay", "--queue-name", "default", "-v", "0")
    time.sleep(1.5)
    xacts = _xacts() - before
    rows = _pg(
        "SELECT count(*), EXTRACT(EPOCH FROM max(finished_at) - min(started_at)) "
        "FROM django_tasks_database_dbtaskresult WHERE status = 'SUCCESSFUL'"
    )
    assert int(rows[0][0]) == n, rows
    return n / float(rows[0][1]), xacts / n


def peer_enqueue(n: int) -> float:
    out = _peer(
        "shell", "-c", f"from bench.peers.dtdb_fill import timed_enqueue; timed_enqueue({n})"
    )
    return float(out.stdout.strip().splitlines()[-1])


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--finished-rows", type=int, default=1_000_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    ensure_database()
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-bench-"))
    sqlite_url = f"sqlite:///{tmp}/bench.sqlite3"
    figures: list[Figure] = []
    drain = f"Drain {args.n:,} no-op tasks, one worker process (tasks/s)"
    worker_opts = f"{args.threads} threads, batch {args.batch_size}"

    pg = Figure(drain, f"taskyard PostgreSQL ({worker_opts})", "tasks/s")
    lite = Figure(drain, f"taskyard SQLite ({worker_opts})", "tasks/s")
    for _ in range(args.repeats):
        pg.runs.append(taskyard_drain(PG_URL, args.n, args.threads, args.batch_size))
        lite.runs.append(taskyard_drain(sqlite_url, args.n, args.threads, args.batch_size))
    figures += [pg, lite]
    peer_xacts = float("nan")
    if _peer_available():
        peer = Figure(drain, "django-tasks-db db_worker on PostgreSQL", "tasks/s")
        for _ in range(args.repeats):
            rate, peer_xacts = peer_drain(args.n)
            peer.runs.append(rate)
        figures.append(peer)

    if args.finished_rows:
        big = f"Drain {args.n:,} tasks with {args.finished_rows:,} finished rows in the table"
        empty = Figure(big, "taskyard PostgreSQL, empty table", "tasks/s", list(pg.runs))
        full = Figure(big, f"taskyard PostgreSQL, {args.finished_rows:,} finished rows", "tasks/s")
        _reset_taskyard(PG_URL)
        _prefill_finished(args.finished_rows)
        for _ in range(args.repeats):
            full.runs.append(
                taskyard_drain(PG_URL, args.n, args.threads, args.batch_size, keep_history=True)
            )
        figures += [empty, full]

    bulk_title = "Enqueue, tasks per second"
    pg_bulk = Figure(bulk_title, "taskyard PostgreSQL enqueue_many", "tasks/s")
    lite_bulk = Figure(bulk_title, "taskyard SQLite enqueue_many", "tasks/s")
    pg_single = Figure(bulk_title, "taskyard PostgreSQL enqueue (one by one)", "tasks/s")
    lite_single = Figure(bulk_title, "taskyard SQLite enqueue (one by one)", "tasks/s")
    for _ in range(args.repeats):
        bulk, single = taskyard_enqueue_rates(PG_URL, args.n)
        pg_bulk.runs.append(bulk)
        pg_single.runs.append(single)
        bulk, single = taskyard_enqueue_rates(sqlite_url, args.n)
        lite_bulk.runs.append(bulk)
        lite_single.runs.append(single)
    figures += [pg_bulk, lite_bulk, pg_single, lite_single]
    if _peer_available():
        figures.append(
            Figure(
                bulk_title,
                "django-tasks-db enqueue (one by one)",
                "tasks/s",
                [peer_enqueue(3000) for _ in range(args.repeats)],
            )
        )

    latencies = taskyard_latency(PG_URL, args.latency_samples)
    lat_lite = taskyard_latency(sqlite_url, args.latency_samples)
    pg_statements, pg_xacts = taskyard_statements(PG_URL, 5000)
    lite_statements, _ = taskyard_statements(sqlite_url, 5000)

    print(f"taskyard database benchmark — {machine()}; median of {args.repeats} runs")
    print_table(figures)
    print(f"\nIdle pickup latency, enqueue to start (ms), {args.latency_samples} tasks 20 ms apart")
    for name, values in (
        ("PostgreSQL (LISTEN/NOTIFY)", latencies),
        ("SQLite (data_version poll)", lat_lite),
    ):
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"  taskyard {name:<30} median {statistics.median(ordered):6.2f}  p99 {p99:6.2f}")
    print("\nRound trips per task (drain of 5,000 tasks, batch 100)")
    print(
        f"  taskyard PostgreSQL: {pg_statements:.3f} SQL statements, "
        f"{pg_xacts:.3f} transactions per task"
    )
    print(f"  taskyard SQLite:     {lite_statements:.3f} SQL statements per task")
    if peer_xacts == peer_xacts:
        print(f"  django-tasks-db:     {peer_xacts:.3f} transactions per task (server count)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
