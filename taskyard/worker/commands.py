"""``taskyard worker``, ``migrate``, ``status``, ``health``, ``prune`` and ``move-data``.

The argument definitions here are reused by the Django management commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from typing import Any

from taskyard.backends.database.backend import database_backend
from taskyard.backends.database.connectors import make_connector
from taskyard.backends.database.migrate import migrate
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.command import Command
from taskyard.config import backends, parse_url
from taskyard.exceptions import InvalidTask
from taskyard.tasks.execution import utcnow
from taskyard.worker.health import HealthServer, Metrics
from taskyard.worker.operations import MoveRefused, move_data, parse_duration, status_report
from taskyard.worker.probes import (
    WorkerHealth,
    health_check,
    monitoring,
    queue_metrics,
)
from taskyard.worker.supervisor import Supervisor
from taskyard.worker.worker import Worker, WorkerConfig, default_worker_id

logger = logging.getLogger("taskyard.worker")

#: Flagsmith task processor flags -> (our destination, environment variable, scale to ours)
FLAGSMITH_ALIASES = {
    "numthreads": ("threads", "TASK_PROCESSOR_NUM_THREADS", 1.0),
    "sleepintervalms": ("interval", "TASK_PROCESSOR_SLEEP_INTERVAL_MS", 0.001),
    "graceperiodms": ("lease", "TASK_PROCESSOR_GRACE_PERIOD_MS", 0.001),
    "queuepopsize": ("batch_size", "TASK_PROCESSOR_QUEUE_POP_SIZE", 1.0),
}
DEFAULTS = {"threads": 5, "interval": 0.5, "lease": 20.0, "batch_size": 10}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _qualifier(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"qualifiers are KEY=VALUE, got {text!r}")
    return key, value


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="default",
        metavar="ALIAS",
        help="settings alias of the Database backend (default: default)",
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_argument(parser)
    parser.add_argument(
        "--queues",
        "--queue-name",
        default=None,
        metavar="A,B|*",
        help="queues to work (default: the backend's QUEUES; * for all)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="executor threads per process (default 5; 1 with --processes)",
    )
    parser.add_argument(
        "--async-concurrency",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="async tasks run at once as coroutines on the worker's event loop, beside the "
        "threads (default: the backend's ASYNC_CONCURRENCY option, 500; 0: on the threads)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="run N child processes, respawned when they die (default: none)",
    )
    parser.add_argument(
        "--max-tasks-per-process",
        type=_positive_int,
        default=None,
        help="a process exits (and is replaced) after this many tasks",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="tasks claimed per statement, the pop size (default 10)",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=None,
        help="seconds between polls when idle (default 0.5)",
    )
    parser.add_argument(
        "--lease",
        type=_positive_float,
        default=None,
        help="seconds a claim lasts without renewal, the grace period (default 20)",
    )
    parser.add_argument("--worker-id", default=None, help="default: hostname:pid")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="run until nothing is due (including tasks enqueued meanwhile), exit",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds running tasks get on the first SIGTERM/SIGINT (default 30)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve /health/liveness, /health/readiness, /processor/monitoring, "
        "/metrics on this port",
    )
    parser.add_argument(
        "--readiness-probe",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="readiness also runs an end-to-end probe task",
    )
    parser.add_argument(
        "--qualifier",
        type=_qualifier,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="this worker claims tasks whose qualifiers it meets (repeatable)",
    )
    parser.add_argument(
        "--with-cron",
        action="store_true",
        help="also run the cron scheduler in this process (see docs/cron.md)",
    )
    for flag, (dest, env, _) in FLAGSMITH_ALIASES.items():
        parser.add_argument(
            f"--{flag}",
            dest=f"flagsmith_{flag}",
            type=int,
            default=None,
            help=f"Flagsmith alias of --{dest.replace('_', '-')} (env {env})",
        )


def worker_config(
    args: argparse.Namespace, backend_queues: frozenset[str], async_default: int = 500
) -> WorkerConfig:
    """Resolve flags, Flagsmith aliases and ``TASK_PROCESSOR_*`` variables into a config."""
    values: dict[str, Any] = {}
    for flag, (dest, env, scale) in FLAGSMITH_ALIASES.items():
        ours = getattr(args, dest)
        theirs = getattr(args, f"flagsmith_{flag}")
        if theirs is None and os.environ.get(env):
            theirs = int(os.environ[env])
        if ours is not None and theirs is not None and abs(ours - theirs * scale) > 1e-9:
            raise argparse.ArgumentTypeError(
                f"--{dest.replace('_', '-')}={ours} contradicts --{flag}/{env}={theirs}"
            )
        if ours is None and theirs is not None:
            if theirs <= 0:
                raise argparse.ArgumentTypeError(f"--{flag}/{env} must be > 0, got {theirs}")
            ours = theirs * scale if scale != 1.0 else theirs
        values[dest] = ours if ours is not None else DEFAULTS[dest]
    if args.processes and args.threads is None:
        values["threads"] = 1
    async_concurrency = getattr(args, "async_concurrency", None)
    if async_concurrency is None:
        async_concurrency = async_default
    if args.queues is None:
        queues = sorted(backend_queues) or None
    elif args.queues.strip() == "*":
        queues = None
    else:
        queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    return WorkerConfig(
        queues=queues,
        threads=int(values["threads"]),
        batch_size=int(values["batch_size"]),
        interval=float(values["interval"]),
        lease=float(values["lease"]),
        worker_id=args.worker_id or default_worker_id(),
        burst=args.burst,
        shutdown_timeout=args.shutdown_timeout,
        max_tasks=args.max_tasks_per_process,
        qualifiers=dict(args.qualifier),
        exclude_queues=list(getattr(args, "exclude_queues", None) or []),
        # one thread: run tasks on the main thread, where timeouts interrupt blocking calls
        inline=int(values["threads"]) == 1,
        # a task that cannot be stopped at its timeout: run this command line again
        on_stuck="exec",
        async_concurrency=async_concurrency,
    )


def run_worker(args: argparse.Namespace) -> int:
    cron = None
    if getattr(args, "with_cron", False):
        from taskyard.cron.commands import start_background

        try:
            cron = start_background()
        except InvalidTask as exc:
            print(f"taskyard worker --with-cron: {exc}", file=sys.stderr)
            return 2
    try:
        return _run_worker(args)
    finally:
        if cron is not None:
            cron.stop()


def _run_worker(args: argparse.Namespace) -> int:
    backend = database_backend(args.backend)
    try:
        config = worker_config(args, backend.queues, backend.options["ASYNC_CONCURRENCY"])
    except argparse.ArgumentTypeError as exc:
        print(f"taskyard worker: {exc}", file=sys.stderr)
        return 2
    if args.processes < 0:
        print("taskyard worker: --processes must be >= 0", file=sys.stderr)
        return 2
    if args.processes:
        supervisor = Supervisor(
            backend, backends.settings(), list(args.imports), config, args.processes
        )
        server = _health(args.health_port, _SupervisorHealth(supervisor))
        try:
            return supervisor.run()
        finally:
            if server:
                server.stop()
    worker = Worker(backend, config)
    server = _health(args.health_port, WorkerHealth(worker, args.readiness_probe))
    try:
        return worker.run()
    finally:
        if server:
            server.stop()


def _health(port: int | None, source: Any) -> HealthServer | None:
    return HealthServer(source, port).start() if port is not None else None


class _SupervisorHealth:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def is_alive(self) -> bool:
        return self.supervisor.state != "stopped"

    def readiness(self) -> tuple[bool, str]:
        if self.supervisor.stopping:
            return False, "shutting down"
        alive = sum(1 for c in self.supervisor.children.values() if c.process.is_alive())
        return (alive > 0, f"{alive} worker process(es) alive")

    def monitoring(self) -> dict[str, Any]:
        data = monitoring(self.supervisor.ops)
        data["processes"] = len(self.supervisor.children)
        return data

    def metrics(self) -> Metrics:
        supervisor = self.supervisor
        return {
            **queue_metrics(supervisor.ops.stats()),
            "taskyard_worker_processes": (
                "gauge",
                "Child worker processes",
                len(supervisor.children),
            ),
            "taskyard_worker_respawns_total": (
                "counter",
                "Child processes replaced",
                supervisor.respawns,
            ),
            "taskyard_worker_timeout_kills_total": (
                "counter",
                "Children killed for overrunning a timeout",
                supervisor.killed_for_timeout,
            ),
        }


# -- migrate, status, health, prune, move-data -------------------------------------------------


def run_migrate(args: argparse.Namespace) -> int:
    backend = database_backend(args.backend)
    applied = backend.migrate()
    have, latest = backend.schema_status()
    for name in applied:
        print(f"applied {name}")
    print(f"{backend.connector.describe()}: schema version {have} (latest {latest})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    print(status_report(QueueOps(database_backend(args.backend))))
    return 0


def add_health_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_argument(parser)
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also enqueue a probe task and wait for a worker to run it",
    )
    parser.add_argument("--probe-queue", default="default")
    parser.add_argument("--probe-timeout", type=_positive_float, default=10.0)
    parser.add_argument(
        "--no-workers", action="store_true", help="do not require a heartbeating worker"
    )


def run_health(args: argparse.Namespace) -> int:
    checks = health_check(
        database_backend(args.backend),
        require_workers=not args.no_workers,
        probe_queue=args.probe_queue if args.probe else None,
        probe_timeout=args.probe_timeout,
    )
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_argument(parser)
    parser.add_argument(
        "--older-than",
        type=parse_duration,
        default=timedelta(days=14),
        help="delete SUCCESSFUL and CANCELLED results finished longer ago than "
        "this (e.g. 7d, 12h; default 14d)",
    )
    parser.add_argument(
        "--failed-older-than",
        type=parse_duration,
        default=None,
        help="also delete FAILED results older than this (default: keep them)",
    )
    parser.add_argument(
        "--queue", action="append", default=None, help="only this queue (repeatable)"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=1000)
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")


def run_prune(args: argparse.Namespace) -> int:
    ops = QueueOps(database_backend(args.backend))
    now = utcnow()
    plan = [(["SUCCESSFUL", "CANCELLED"], args.older_than)]
    if args.failed_older_than is not None:
        plan.append((["FAILED"], args.failed_older_than))
    for statuses, age in plan:
        n = ops.prune(now - age, statuses, args.queue, args.batch_size, args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {n} {'/'.join(statuses)} result(s) older than {age}")
    return 0


def add_move_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="database URL the tasks are in")
    parser.add_argument("--target", required=True, help="database URL to move them to")
    parser.add_argument("--no-destroy", action="store_true", help="copy, keep the source rows")
    parser.add_argument("--batch-size", type=_positive_int, default=1000)


def run_move(args: argparse.Namespace) -> int:
    source = make_connector(args.source, parse_url(args.source)["OPTIONS"])
    target = make_connector(args.target, parse_url(args.target)["OPTIONS"])
    migrate(target)
    try:
        moved = move_data(
            source,
            target,
            destroy=not args.no_destroy,
            batch_size=args.batch_size,
            progress=lambda n: print(f"  {n} moved", flush=True),
        )
    except MoveRefused as exc:
        print(f"taskyard move-data: refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"moved {moved} task(s) from {source.describe()} to {target.describe()}"
        + (" (source kept)" if args.no_destroy else "")
    )
    return 0


COMMANDS = [
    Command("worker", "run Database-backend tasks", add_worker_arguments, run_worker),
    Command("migrate", "create or upgrade the database tables", add_backend_argument, run_migrate),
    Command(
        "status",
        "counts per queue and status, oldest waiting, workers",
        add_backend_argument,
        run_status,
    ),
    Command("health", "exit 0 if the queue is healthy, 1 if not", add_health_arguments, run_health),
    Command("prune", "delete old finished results", add_prune_arguments, run_prune),
    Command(
        "move-data", "move task rows from one database to another", add_move_arguments, run_move
    ),
]
