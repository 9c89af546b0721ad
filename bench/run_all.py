"""The whole benchmark harness (``make bench``): every taskyard backend beside its peers, on
this machine, the same PostgreSQL and the same (private) Redis, one worker process each,
no-op tasks unless stated.

Writes ``docs/benchmarks.json`` (every run of every figure, with the machine and versions),
then ``docs/benchmarks.md`` (the generated part) and ``docs/benchmarks.png`` through
``bench/report.py``. See the method notes in ``docs/benchmarks.md``.

    python bench/run_all.py [--quick] [--repeats 3] [--only drain,latency] [--subjects a,b]
                            [--peer-python /path/to/python3.13] [--report-only] [--fresh]

A run with ``--only`` or ``--subjects`` keeps the figures of the existing JSON that it does not
measure (``--fresh`` starts from nothing); a full run replaces them all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    ENV,
    PG_URL,
    ROOT,
    PgCounter,
    Stamps,
    TurnCounter,
    ensure_database,
    private_redis,
    rss_mib,
    running,
    wait_for,
)
from bench.iobound import step_iobound
from bench.peers.arq_peer import Arq
from bench.peers.base import Context, Subject
from bench.peers.celery_peer import Celery
from bench.peers.django_tasks_db import DjangoTasksDB
from bench.peers.dramatiq_peer import Dramatiq
from bench.peers.huey_peer import PostgresHuey, RedisHuey, SqliteHuey
from bench.peers.procrastinate_peer import Procrastinate
from bench.peers.rq_family import (
    DjangoTasksRQ,
    DjangoTasksRQForking,
    PlainRQ,
    PlainRQForking,
    TaskyardRedis,
    TaskyardRedisDefault,
    TaskyardRedisForking,
)
from bench.peers.saq_peer import SAQ
from bench.peers.taskiq_peer import Taskiq
from bench.peers.taskyard_db import TaskyardPostgres, TaskyardSQLite
from bench.scaleout import step_scaleout

SUBJECTS: list[type[Subject]] = [
    TaskyardPostgres,
    TaskyardSQLite,
    TaskyardRedis,
    TaskyardRedisForking,
    TaskyardRedisDefault,
    DjangoTasksDB,
    Procrastinate,
    PostgresHuey,
    SqliteHuey,
    RedisHuey,
    Celery,
    SAQ,
    Arq,
    Taskiq,
    Dramatiq,
    PlainRQ,
    PlainRQForking,
    DjangoTasksRQ,
    DjangoTasksRQForking,
]

#: scenario key -> (title, unit, "higher" or "lower" is better)
SCENARIOS: dict[str, tuple[str, str, str]] = {
    "drain": ("Drain {n} queued no-op tasks, one worker process", "tasks/s", "higher"),
    "enqueue_bulk": ("Enqueue in bulk (the framework's bulk API)", "tasks/s", "higher"),
    "enqueue_one": ("Enqueue, one call per task", "tasks/s", "higher"),
    "latency_p50": ("Idle pickup latency, median (enqueue call to task start)", "ms", "lower"),
    "latency_p99": ("Idle pickup latency, 99th percentile", "ms", "lower"),
    "drain_history": (
        "Drain with {rows} finished rows already in the table (database queues)",
        "tasks/s",
        "higher",
    ),
    "drain_history_empty": (
        "The same drain with an empty table, measured just before",
        "tasks/s",
        "higher",
    ),
    "memory_10k": ("Worker resident memory after 10,000 tasks", "MiB", "lower"),
    "memory_100k": ("Worker resident memory after 100,000 tasks", "MiB", "lower"),
    "sql_per_task": ("SQL statements per task, enqueue + worker", "statements", "lower"),
    "redis_per_task": ("Redis commands per task, enqueue + worker", "commands", "lower"),
    "redis_trips_per_task": (
        "Redis round trips per task, enqueue + worker",
        "round trips",
        "lower",
    ),
    "inproc_immediate": ("In-process: Immediate backend, enqueue-and-run", "calls/s", "higher"),
    "inproc_threadpool": (
        "In-process: ThreadPool, {n} tasks enqueued to finished",
        "tasks/s",
        "higher",
    ),
    "inproc_latency": ("In-process: ThreadPool idle pickup latency, median", "ms", "lower"),
    "io_async": (
        "I/O-bound drain: {n} async tasks that each await asyncio.sleep(0.1), one worker process",
        "tasks/s",
        "higher",
    ),
    "io_sync": (
        "I/O-bound drain: {n} sync tasks that each call time.sleep(0.1), 100 threads, one "
        "worker process",
        "tasks/s",
        "higher",
    ),
    "io_rss_1000": ("Worker resident memory, 1,000 async tasks in flight (peak)", "MiB", "lower"),
    "io_latency_p50": ("Idle pickup latency of an async task, median", "ms", "lower"),
    "scaleout": ("Scale-out: no-op drain with 1, 2 and 4 worker processes", "tasks/s", "higher"),
}
STEPS = [
    "drain",
    "enqueue",
    "latency",
    "history",
    "memory",
    "round_trips",
    "iobound",
    "scaleout",
    "inproc",
]
JSON_PATH = ROOT / "docs" / "benchmarks.json"

log = logging.getLogger("bench")


class Results:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.figures: list[dict[str, Any]] = []

    def add(
        self,
        scenario: str,
        subject: Subject | str,
        runs: list[float],
        note: str = "",
        ours: bool | None = None,
        key: str = "",
    ) -> None:
        label = subject if isinstance(subject, str) else subject.label
        entry = {
            "scenario": scenario,
            "subject": label,
            "key": key or (label if isinstance(subject, str) else subject.key),
            "ours": ours if ours is not None else (not isinstance(subject, str) and subject.ours),
            "store": "" if isinstance(subject, str) else subject.store,
            "unit": SCENARIOS[scenario][1],
            "better": SCENARIOS[scenario][2],
            "runs": runs,
            "median": statistics.median(runs) if runs else None,
            "min": min(runs) if runs else None,
            "max": max(runs) if runs else None,
            "note": note,
        }
        self.figures = [
            f for f in self.figures if not (f["scenario"] == scenario and f["key"] == entry["key"])
        ]
        self.figures.append(entry)
        print(
            f"    {scenario:<16} {label:<52} {entry['median'] if runs else float('nan'):>12.3f} "
            f"{entry['unit']}  runs={[round(r, 2) for r in runs]} {note}",
            flush=True,
        )

    def get(self, scenario: str, key: str) -> dict[str, Any] | None:
        for figure in self.figures:
            if figure["scenario"] == scenario and figure["key"] == key:
                return figure
        return None

    def save(self, path: Path = JSON_PATH) -> None:
        path.write_text(json.dumps({"meta": self.meta, "figures": self.figures}, indent=1) + "\n")


# -- one measurement ------------------------------------------------------------------------------


def worker_log(subject: Subject, ctx: Context) -> Path:
    folder = ctx.tmp / "logs"
    folder.mkdir(exist_ok=True)
    return folder / f"{subject.key}.log"


def drain_once(subject: Subject, ctx: Context, n: int) -> float:
    subject.reset()
    subject.fill(n)
    argv = subject.worker_argv(burst=subject.burst)
    run_worker_until(subject, ctx, n, argv, timeout=max(300.0, n / 20))
    done, seconds = subject.span()
    if done < n or seconds <= 0:
        raise RuntimeError(f"{subject.key}: {done} of {n} tasks finished (see {ctx.tmp}/logs)")
    return n / seconds


def run_worker_until(
    subject: Subject, ctx: Context, n: int, argv: list[str], timeout: float = 600
) -> None:
    """Run the worker ``argv`` until ``n`` tasks are done (a burst worker: until it exits)."""
    if subject.burst:
        with open(worker_log(subject, ctx), "ab") as out:
            subprocess.run(
                argv,
                env=subject.worker_env(),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout,
            )
    else:
        with running(argv, subject.worker_env(), worker_log(subject, ctx)):
            wait_for(lambda: subject.done_count() >= n, timeout, 0.05)


def latencies(subject: Subject, ctx: Context, samples: int, gap: float) -> list[float]:
    subject.reset()
    stamps = Stamps()
    try:
        with running(
            subject.worker_argv(burst=False), subject.worker_env(), worker_log(subject, ctx)
        ):
            subject.enqueue_stamp(-1, stamps.port)  # warm up: the worker is up and idle after it
            if stamps.wait(-1, 90) is None:
                raise RuntimeError(f"{subject.key}: the worker ran no probe within 90 s")
            time.sleep(1.0)
            out = []
            # gaps drawn at random around ``gap``, so a worker that polls at a fixed interval is
            # not caught at the same phase every time (50 ms is a multiple of most intervals)
            rng = random.Random(token_seed(subject.key))
            for token in range(samples):
                before = subject.enqueue_stamp(token, stamps.port)
                at = stamps.wait(token, 15)
                if at is not None:
                    out.append((at - before) * 1000)
                time.sleep(gap * rng.uniform(0.6, 1.4))
            return out
    finally:
        stamps.close()


def token_seed(key: str) -> int:
    return sum(map(ord, key))


def memory(subject: Subject, ctx: Context, total: int, marks: list[int]) -> dict[int, float]:
    subject.reset()
    subject.fill(total)
    out: dict[int, float] = {}
    with running(
        subject.worker_argv(burst=False), subject.worker_env(), worker_log(subject, ctx)
    ) as proc:
        deadline = time.monotonic() + 1200
        pending = sorted(marks)
        while pending and time.monotonic() < deadline:
            done = subject.done_count()
            while pending and done >= pending[0]:
                out[pending.pop(0)] = rss_mib(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(f"{subject.key}: worker exited during the memory run")
            time.sleep(0.05)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- scenarios ------------------------------------------------------------------------------------


def step_drain(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    # repeats outermost: each round measures every subject once, so a slow spell of this
    # shared machine lands on all of them rather than on whoever ran at that moment
    runs: dict[str, list[float]] = {s.key: [] for s in subjects}
    for round_ in range(args.repeats):
        for subject in subjects:
            n = min(subject.drain_n or args.n, args.n)
            runs[subject.key].append(drain_once(subject, ctx, n))
            print(
                f"    drain round {round_ + 1}: {subject.key} {runs[subject.key][-1]:,.1f}/s",
                flush=True,
            )
    for subject in subjects:
        n = min(subject.drain_n or args.n, args.n)
        note = subject.worker_note + (f"; {n:,} tasks per run" if n != args.n else "")
        res.add("drain", subject, runs[subject.key], note)
    res.save()


def step_enqueue(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    for subject in subjects:
        if subject.key.endswith(("-fork", "-default")):
            continue  # the same client as its SimpleWorker twin
        single_n = args.single_n if subject.key not in ("django-tasks-db",) else args.single_n // 2
        runs = []
        for _ in range(args.repeats):
            subject.reset()
            runs.append(single_n / subject.enqueue_one(single_n))
        res.add("enqueue_one", subject, runs, f"{single_n:,} tasks per run")
        subject.reset()
        if subject.enqueue_bulk(10) is None:
            continue
        runs = []
        for _ in range(args.repeats):
            subject.reset()
            seconds = subject.enqueue_bulk(args.bulk_n)
            assert seconds is not None
            runs.append(args.bulk_n / seconds)
        res.add("enqueue_bulk", subject, runs, f"{args.bulk_n:,} tasks per run, 5,000 per call")
        subject.reset()
        res.save()


def step_latency(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    for subject in subjects:
        values = latencies(subject, ctx, args.latency_samples, args.latency_gap)
        low, high = args.latency_gap * 600, args.latency_gap * 1400
        note = f"{len(values)} tasks, {low:.0f}\u2013{high:.0f} ms apart"
        res.add("latency_p50", subject, [statistics.median(values)], note)
        res.add("latency_p99", subject, [percentile(values, 0.99)], note)
        res.figures[-1]["samples"] = values
        res.save()


def step_history(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    """Each database queue drained with an empty table, then with ``--history-rows`` finished
    rows in it, then empty again: the empty figure is the median of the runs before and after,
    so a slow spell of this shared machine does not pass for an effect of the rows. The table
    is vacuumed before each phase."""
    for subject in subjects:
        if not subject.history:
            continue
        n = min(subject.drain_n or args.n, args.n)
        subject.reset()
        subject.drop_history()  # also VACUUM ANALYZE: the same start for every phase
        empty = [drain_once(subject, ctx, n) for _ in range(args.repeats)]
        subject.reset()
        subject.prefill_history(args.history_rows)
        try:
            runs = [drain_once(subject, ctx, n) for _ in range(args.repeats)]
        finally:
            subject.drop_history()
        empty += [drain_once(subject, ctx, n) for _ in range(args.repeats)]
        change = (statistics.median(runs) / statistics.median(empty) - 1) * 100
        res.add("drain_history_empty", subject, empty, subject.worker_note)
        res.add(
            "drain_history",
            subject,
            runs,
            f"{change:+.1f}% vs the empty table (runs before and after); " + subject.worker_note,
        )
        res.save()


def step_memory(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    marks = [args.memory_n // 10, args.memory_n]
    for subject in subjects:
        drained = res.get("drain", subject.key)
        if not subject.ours and drained and args.memory_n / drained["median"] > args.memory_budget:
            print(
                f"    memory: {subject.key} skipped (would take "
                f"{args.memory_n / drained['median']:.0f} s)",
                flush=True,
            )
            continue
        if subject.key in ("taskyard-redis-fork", "rq-fork", "django-tasks-rq-fork"):
            continue
        if drained is None and not subject.ours:
            continue
        if (
            subject.key in ("taskyard-redis", "taskyard-redis-default")
            and drained
            and args.memory_n / drained["median"] > 4 * args.memory_budget
        ):
            continue
        rss = memory(subject, ctx, args.memory_n, marks)
        growth = (rss[marks[1]] / rss[marks[0]] - 1) * 100
        res.add("memory_10k", subject, [rss[marks[0]]], subject.worker_note)
        res.add(
            "memory_100k",
            subject,
            [rss[marks[1]]],
            f"{growth:+.1f}% from {marks[0]:,} to {marks[1]:,} tasks",
        )
        res.save()


def _redis_commands(url: str) -> int:
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    skip = {"cmdstat_info", "cmdstat_flushdb", "cmdstat_ping"}
    return sum(v["calls"] for k, v in stats.items() if k not in skip)


def step_round_trips(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    n = args.round_trip_n
    for subject in subjects:
        if subject.key.endswith("-fork"):
            continue
        if subject.store == "postgresql":
            proxy = PgCounter(ctx.pg_url)
            counted = type(subject)(ctx.with_pg(proxy.url))
            try:
                counted.prepare()
                counted.enqueue_one(1)  # connect, set up
                counted.reset()
                proxy.reset()
                counted.enqueue_one(n)
                enq, enq_trips = proxy.reset()
                run_worker_until(counted, ctx, n, counted.worker_argv(burst=counted.burst))
                work, work_trips = proxy.reset()
            finally:
                counted.close()
                proxy.close()
            note = (
                f"enqueue {enq / n:.2f} + worker {work / n:.2f} statements; "
                f"round trips {enq_trips / n:.2f} + {work_trips / n:.2f}; "
                f"counted on the wire, {n:,} tasks"
            )
            res.add("sql_per_task", subject, [(enq + work) / n], note)
        elif subject.store == "redis":
            proxy = TurnCounter(ctx.redis_url)
            counted = type(subject)(replace(ctx, redis_url=proxy.url))
            try:
                counted.reset()
                counted.enqueue_one(1)
                counted.reset()
                before, _ = _redis_commands(ctx.redis_url), proxy.reset()
                counted.enqueue_one(n)
                enqueued, enq_trips = _redis_commands(ctx.redis_url), proxy.reset()
                run_worker_until(counted, ctx, n, counted.worker_argv(burst=counted.burst))
                ran, work_trips = _redis_commands(ctx.redis_url), proxy.reset()
            finally:
                counted.close()
                proxy.close()
            enq, work = (enqueued - before) / n, (ran - enqueued) / n
            note = (
                f"enqueue {enq:.2f} + worker {work:.2f} commands (INFO commandstats: commands "
                f"inside Lua scripts count); round trips {enq_trips / n:.2f} + "
                f"{work_trips / n:.2f}; {n:,} tasks"
            )
            res.add("redis_per_task", subject, [enq + work], note)
            res.add("redis_trips_per_task", subject, [(enq_trips + work_trips) / n], note)
            res.figures[-1].update(enqueue_trips=enq_trips / n, worker_trips=work_trips / n)
        elif subject.store == "sqlite":
            enq, work = sqlite_statements(subject, ctx, n)
            note = f"enqueue {enq:.2f} + worker {work:.2f} (sqlite3 trace callback); {n:,} tasks"
            res.add("sql_per_task", subject, [enq + work], note)
        res.save()


def sqlite_statements(subject: Subject, ctx: Context, n: int) -> tuple[float, float]:
    import importlib
    import sqlite3

    count = [0]

    def trace(statement: str) -> None:
        count[0] += 1

    subject.reset()
    subject.enqueue_one(1)
    subject.reset()
    original = sqlite3.connect

    def connect(*a: Any, **k: Any) -> sqlite3.Connection:
        conn = original(*a, **k)
        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        if subject.key.startswith("taskyard"):
            from bench.peers import taskyard_db

            taskyard_db._active["url"] = None
        else:
            import bench.peers.huey_app as app

            importlib.reload(app)
        subject.enqueue_one(1)
        subject.reset()
        count[0] = 0
        subject.enqueue_one(n)
        enqueued = count[0]
    finally:
        sqlite3.connect = original  # type: ignore[assignment]
    out = ctx.tmp / f"sqlcount-{subject.key}"
    argv = subject.worker_argv(burst=subject.burst)
    program = ["-m", "taskyard", *argv[3:]] if argv[1:3] == ["-m", "taskyard"] else argv
    wrapped = [sys.executable, "-m", "bench.peers.sqlite_trace", str(out), *program]
    run_worker_until(subject, ctx, n, wrapped)
    time.sleep(0.2)
    worker = int(out.read_text())
    return enqueued / n, worker / n


def step_inproc(res: Results, args: argparse.Namespace) -> None:
    pythons = [sys.executable] + ([args.peer_python] if args.peer_python else [])
    for python in pythons:
        done = subprocess.run(
            [
                python,
                str(ROOT / "bench" / "bench_core.py"),
                "--n",
                str(args.n),
                "--repeats",
                str(max(args.repeats, 3)),
                "--json",
                "--latency",
                str(args.latency_samples),
            ],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            print(f"    in-process under {python} failed:\n{done.stderr}", flush=True)
            continue
        for item in json.loads(done.stdout.strip().splitlines()[-1]):
            scenario = (
                "inproc_immediate"
                if "Immediate" in item["scenario"]
                else "inproc_latency"
                if "latency" in item["scenario"]
                else "inproc_threadpool"
            )
            res.add(
                scenario,
                item["subject"],
                item["runs"],
                item.get("note", ""),
                ours=item["subject"].startswith("taskyard"),
            )
    res.save()


# -- main -----------------------------------------------------------------------------------------


def versions(subjects: list[Subject], redis_url: str) -> dict[str, str]:
    import psycopg
    import redis

    out = {"python": platform.python_version()}
    with psycopg.connect(PG_URL) as conn:
        out["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        for name in ("synchronous_commit", "fsync", "shared_buffers"):
            out[f"postgresql {name}"] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    out["redis"] = str(redis.Redis.from_url(redis_url).info("server")["redis_version"])
    for subject in subjects:
        with contextlib.suppress(Exception):
            out[subject.key] = subject.versions()
    from importlib.metadata import version

    out["taskyard"] = version("taskyard")
    return out


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return {
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "load_at_start": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (minutes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=20_000, help="tasks per drain run")
    parser.add_argument("--single-n", type=int, default=2_000)
    parser.add_argument("--bulk-n", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--latency-gap", type=float, default=0.05)
    parser.add_argument("--history-rows", type=int, default=1_000_000)
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=100.0,
        help="skip a peer's memory run when it would take longer (s)",
    )
    parser.add_argument("--round-trip-n", type=int, default=1000)
    parser.add_argument("--io-n", type=int, default=10_000, help="tasks per I/O-bound drain")
    parser.add_argument(
        "--io-sweep-n", type=int, default=2_000, help="tasks per run of the concurrency sweep"
    )
    parser.add_argument(
        "--io-budget",
        type=float,
        default=60.0,
        help="an I/O-bound or scale-out run stops after this long (s), counting what finished",
    )
    parser.add_argument("--scale-n", type=int, default=20_000, help="tasks per scale-out run")
    parser.add_argument(
        "--scale-budget",
        type=float,
        default=30.0,
        help="a scale-out run stops after this long (s), counting what finished",
    )
    parser.add_argument("--only", default="", help=f"comma-separated steps of {STEPS}")
    parser.add_argument("--subjects", default="", help="comma-separated subject keys")
    parser.add_argument("--peer-python", default="", help="a Python >= 3.12 with Django 6")
    parser.add_argument(
        "--aio-python",
        default=os.environ.get("BENCH_AIO_PYTHON", str(ROOT / ".venv-bench-aio/bin/python")),
        help="a Python with arq (whose redis-py pin conflicts with rq's); default "
        ".venv-bench-aio/bin/python",
    )
    parser.add_argument("--report-only", action="store_true", help="re-render from the JSON")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep figures of the existing JSON that this run does not measure (implied by "
        "--only and --subjects)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="with --only or --subjects: do not merge"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.n, args.single_n, args.bulk_n = 1, 2000, 300, 5000
        args.latency_samples, args.history_rows, args.memory_n = 20, 100_000, 10_000
        args.round_trip_n, args.memory_budget = 200, 20
        args.io_n, args.io_sweep_n, args.io_budget, args.scale_n = 2000, 500, 20, 2000
        args.scale_budget = 15
    if (args.only or args.subjects) and not args.fresh:
        args.merge = True
    if args.report_only:
        from bench import report

        report.render(JSON_PATH)
        return 0

    logging.disable(logging.WARNING)
    steps = args.only.split(",") if args.only else STEPS
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; the steps are {STEPS}")
    started = time.monotonic()
    ensure_database()
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-bench-"))
    print(f"taskyard benchmark harness; worker logs in {tmp}/logs", flush=True)
    with private_redis() as redis_url:
        ctx = Context(pg_url=PG_URL, redis_url=redis_url, tmp=tmp, aio_python=args.aio_python)
        wanted = set(args.subjects.split(",")) if args.subjects else None
        subjects = [cls(ctx) for cls in SUBJECTS if wanted is None or cls.key in wanted]
        for subject in [s for s in subjects if not s.available()]:
            print(f"   {subject.key} left out: not installed here (see its module)", flush=True)
            subjects.remove(subject)
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(subjects, redis_url),
            "args": {k: v for k, v in vars(args).items()},
        }
        res = Results(meta)
        timing = meta  # where this run's duration goes
        if args.merge and JSON_PATH.exists():
            old = json.loads(JSON_PATH.read_text())
            res.figures = old["figures"]
            # the page keeps describing the full run; a merged re-run is listed beside it
            timing = {"date": meta["date"], "steps": steps, "subjects": args.subjects or "all"}
            res.meta = {**old["meta"], "reruns": [*old["meta"].get("reruns", []), timing]}
        for subject in subjects:
            subject.prepare()
        table: dict[str, Callable[..., None]] = {
            "drain": step_drain,
            "enqueue": step_enqueue,
            "latency": step_latency,
            "history": step_history,
            "memory": step_memory,
            "round_trips": step_round_trips,
            "iobound": step_iobound,
            "scaleout": step_scaleout,
        }
        try:
            for step in steps:
                step_started = time.monotonic()
                res.meta.setdefault("load_by_step", {})[step] = round(os.getloadavg()[0], 2)
                print(f"== {step}", flush=True)
                if step == "inproc":
                    step_inproc(res, args)
                else:
                    table[step](subjects, ctx, res, args)
                print(f"   ({time.monotonic() - step_started:.0f} s)", flush=True)
        finally:
            for subject in subjects:
                subject.close()
            timing["duration_s"] = round(time.monotonic() - started)
            res.save()
    from bench import report

    report.render(JSON_PATH)
    print(f"done in {time.monotonic() - started:.0f} s: docs/benchmarks.md, .json, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
