"""``taskyard worker``: flags, the Flagsmith aliases and their environment variables.

Precedence, as everywhere: an explicit flag (ours or its Flagsmith alias; the two must agree)
wins over the ``TASK_PROCESSOR_*`` environment variable, which wins over the default. The
argument definitions here are reused by Django's ``db_worker``. The operations commands
(``migrate``, ``status``...) are in ``ops_commands.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from taskyard.backends.database.backend import DatabaseBackend, database_backend
from taskyard.command import (
    Command,
    CommandError,
    not_negative_int,
    port_number,
    positive_float,
    positive_int,
)
from taskyard.config import backends
from taskyard.exceptions import InvalidTask
from taskyard.worker.health import HealthServer, Metrics, monitoring_payload
from taskyard.worker.probes import KnownQueues, WorkerHealth, queue_metrics
from taskyard.worker.startup import add_connect_arguments, reach_backend
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
        type=positive_int,
        default=None,
        help="executor threads per process (default 5; 1 with --processes)",
    )
    parser.add_argument(
        "--async-concurrency",
        type=not_negative_int,
        default=None,
        metavar="N",
        help="async tasks run at once as coroutines on the worker's event loop, beside the "
        "threads (default: the backend's ASYNC_CONCURRENCY option, 500; 0: on the threads)",
    )
    parser.add_argument(
        "--processes",
        type=not_negative_int,
        default=0,
        help="run N child processes, respawned when they die (default: none)",
    )
    parser.add_argument(
        "--max-tasks-per-process",
        type=positive_int,
        default=None,
        help="with --processes: a child exits and is replaced after this many tasks; without: "
        "the worker exits (status 0) after this many tasks, for your process supervisor "
        "(systemd, Kubernetes...) to restart it",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="tasks claimed per statement, the pop size (default 10)",
    )
    parser.add_argument(
        "--interval",
        type=positive_float,
        default=None,
        help="seconds between polls when idle (default 0.5)",
    )
    parser.add_argument(
        "--lease",
        type=positive_float,
        default=None,
        help="seconds a claim lasts without renewal, the grace period (default 20)",
    )
    parser.add_argument(
        "--worker-id", default=None, help="recorded on each attempt (default: hostname:pid)"
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="run until nothing is due (including tasks enqueued meanwhile), exit",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=positive_float,
        default=30.0,
        help="seconds running tasks get on the first SIGTERM/SIGINT (default 30)",
    )
    parser.add_argument(
        "--health-port",
        type=port_number,
        default=None,
        help="serve /health/liveness, /health/readiness, /processor/monitoring, "
        "/metrics on this port",
    )
    parser.add_argument(
        "--readiness-probe",
        type=positive_float,
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
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the SQLite database file if it is missing (never its directory); "
        "without it, a missing file stops the worker (taskyard migrate creates it)",
    )
    add_connect_arguments(parser)
    for flag, (dest, env, _) in FLAGSMITH_ALIASES.items():
        parser.add_argument(
            f"--{flag}",
            dest=f"flagsmith_{flag}",
            type=positive_int,
            default=None,
            help=f"Flagsmith alias of --{dest.replace('_', '-')} (environment variable {env})",
        )


def _environment_value(env: str) -> int | None:
    """A ``TASK_PROCESSOR_*`` variable as a whole number > 0; a bad value names the variable."""
    text = os.environ.get(env, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"environment variable {env}={text!r} is not a whole number"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"environment variable {env} must be > 0, got {value}")
    return value


def worker_config(
    args: argparse.Namespace, backend_queues: frozenset[str], async_default: int = 500
) -> WorkerConfig:
    """Resolve flags, Flagsmith aliases and ``TASK_PROCESSOR_*`` variables into a config.

    A flag wins over its environment variable; our flag and its Flagsmith alias, both given,
    must agree. Raises ``argparse.ArgumentTypeError`` naming the flag or variable at fault.
    """
    values: dict[str, Any] = {}
    for flag, (dest, env, scale) in FLAGSMITH_ALIASES.items():
        ours = getattr(args, dest)
        theirs = getattr(args, f"flagsmith_{flag}")
        if ours is not None and theirs is not None and abs(ours - theirs * scale) > 1e-9:
            raise argparse.ArgumentTypeError(
                f"--{dest.replace('_', '-')}={ours} contradicts --{flag}={theirs}"
            )
        if ours is None and theirs is not None:
            ours = theirs * scale if scale != 1.0 else theirs
        if ours is None:
            from_env = _environment_value(env)
            if from_env is not None:
                ours = from_env * scale if scale != 1.0 else from_env
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
        if not queues:  # `--queues ''` served no queue at all, silently, forever
            raise CommandError(
                f"--queues {args.queues!r} names no queue: give a,b or * for every queue"
            )
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
    """Run ``taskyard worker``: check the flags, reach the database (``--connect-retries``),
    start the scheduler with ``--with-cron``, then run threads or ``--processes`` children.
    Raises ``CommandError`` (one line) for a bad flag or an unusable database."""
    backend = database_backend(args.backend)
    try:
        config = worker_config(args, backend.queues, backend.options["ASYNC_CONCURRENCY"])
    except argparse.ArgumentTypeError as exc:
        raise CommandError(str(exc)) from None
    if getattr(args, "create", False):
        backend.allow_create()
    reach_backend(backend, getattr(args, "connect_retries", 0))
    if args.max_tasks_per_process and not args.processes and not args.burst:
        logger.warning(
            "--max-tasks-per-process %d without --processes: this worker exits after %d "
            "tasks; run it under a supervisor that restarts it (systemd Restart=always, "
            "Kubernetes, supervisord)",
            args.max_tasks_per_process,
            args.max_tasks_per_process,
        )
    cron = None
    if getattr(args, "with_cron", False):
        from taskyard.cron.commands import start_background

        try:
            cron = start_background()
        except InvalidTask as exc:
            raise CommandError(f"--with-cron: {exc}") from None
    try:
        return _run(args, backend, config)
    finally:
        if cron is not None:
            cron.stop()


def _run(args: argparse.Namespace, backend: DatabaseBackend, config: WorkerConfig) -> int:
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


def worker_counters(processed: int, succeeded: int, failed: int) -> Metrics:
    """The counters every worker mode exports on ``/metrics`` (process mode: its children's
    sums)."""
    return {
        "taskyard_worker_processed_total": ("counter", "Attempts this worker finished", processed),
        "taskyard_worker_succeeded_total": ("counter", "Attempts that succeeded", succeeded),
        "taskyard_worker_failed_total": ("counter", "Tasks that ended FAILED here", failed),
    }


class _SupervisorHealth:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.queues = KnownQueues(supervisor.ops, supervisor.config.queues)

    def is_alive(self) -> bool:
        return self.supervisor.state != "stopped"

    def readiness(self) -> tuple[bool, str]:
        if self.supervisor.stopping:
            return False, "shutting down"
        alive = sum(1 for c in self.supervisor.children.values() if c.process.is_alive())
        return (alive > 0, f"{alive} worker process(es) alive")

    def monitoring(self) -> dict[str, Any]:
        data = monitoring_payload(self.queues.stats())
        data["processes"] = len(self.supervisor.children)
        return data

    def metrics(self) -> Metrics:
        supervisor = self.supervisor
        return {
            **queue_metrics(self.queues.stats()),
            **worker_counters(supervisor.processed, supervisor.succeeded, supervisor.failed),
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


COMMANDS = [Command("worker", "run Database-backend tasks", add_worker_arguments, run_worker)]
