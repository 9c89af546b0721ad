"""``taskyard migrate``, ``status``, ``health``, ``prune`` and ``move-data``.

Only ``migrate`` (and ``move-data``, for its target) creates a SQLite database file, and no
command creates a directory; the others name a missing database instead of creating an empty
one. The argument definitions are reused by the Django management commands.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from taskyard.backends.database.backend import DatabaseBackend, database_backend
from taskyard.backends.database.connectors import make_connector
from taskyard.backends.database.migrate import migrate
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.command import EXIT_FAILURE, Command, CommandError, positive_float, positive_int
from taskyard.config import backends, parse_url
from taskyard.tasks.execution import utcnow
from taskyard.worker.commands import add_backend_argument
from taskyard.worker.operations import MoveRefused, move_data, parse_duration, status_report
from taskyard.worker.probes import health_check

if TYPE_CHECKING:
    from taskyard.backends.redis.ops import RedisOps


def existing_database(alias: str) -> DatabaseBackend:
    """The Database backend ``alias``, opened without creating a file or applying the schema."""
    backend = database_backend(alias)
    backend.open_existing()
    return backend


def run_migrate(args: argparse.Namespace) -> int:
    backend = database_backend(args.backend)
    applied = backend.migrate()
    have, latest = backend.schema_status()
    for name in applied:
        print(f"applied {name}")
    print(f"{backend.connector.describe()}: schema version {have} (latest {latest})")
    return 0


def redis_ops(alias: str) -> RedisOps | None:
    """The Redis operations of ``alias`` when it is a Redis backend (``status``, ``health`` and
    ``prune`` work on both the Database and the Redis backend), else ``None``."""
    backend = backends[alias]
    if type(backend).__module__.startswith("taskyard.backends.redis"):
        from taskyard.backends.redis.backend import RedisBackend
        from taskyard.backends.redis.ops import RedisOps

        if isinstance(backend, RedisBackend):
            return RedisOps(backend)
    return None


def run_status(args: argparse.Namespace) -> int:
    ops = redis_ops(args.backend)
    print(status_report(ops if ops is not None else QueueOps(existing_database(args.backend))))
    return 0


def add_health_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_argument(parser)
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also enqueue a probe task and wait for a worker to run it",
    )
    parser.add_argument(
        "--probe-queue",
        default="default",
        metavar="QUEUE",
        help="queue the --probe task is enqueued on (default: default)",
    )
    parser.add_argument(
        "--probe-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long --probe waits for a worker to run the probe task (default 10)",
    )
    parser.add_argument(
        "--no-workers", action="store_true", help="do not require a heartbeating worker"
    )


def run_health(args: argparse.Namespace) -> int:
    options = {
        "require_workers": not args.no_workers,
        "probe_queue": args.probe_queue if args.probe else None,
        "probe_timeout": args.probe_timeout,
    }
    ops = redis_ops(args.backend)
    if ops is not None:
        from taskyard.backends.redis.ops import health_check as redis_health_check

        checks = redis_health_check(ops.backend, **options)
    else:
        checks = health_check(existing_database(args.backend), **options)
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_argument(parser)
    parser.add_argument(
        "--older-than",
        type=parse_duration,
        default=timedelta(days=14),
        metavar="DURATION",
        help="delete SUCCESSFUL and CANCELLED results finished longer ago than this: a number "
        "and a unit, 45s, 30m, 12h, 7d or 2w (default 14d)",
    )
    parser.add_argument(
        "--failed-older-than",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="also delete FAILED results older than this, e.g. 30d (default: keep them)",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=None,
        metavar="QUEUE",
        help="only this queue (repeatable; default: every queue)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        help="rows deleted per statement (default 1000)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")


def run_prune(args: argparse.Namespace) -> int:
    ops: QueueOps | RedisOps | None = redis_ops(args.backend)
    if ops is None:
        ops = QueueOps(existing_database(args.backend))
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
    parser.add_argument(
        "--source", required=True, metavar="URL", help="database URL the tasks are in"
    )
    parser.add_argument(
        "--target",
        required=True,
        metavar="URL",
        help="database URL to move them to (its schema is applied; a SQLite file is created, "
        "never its directory)",
    )
    parser.add_argument("--no-destroy", action="store_true", help="copy, keep the source rows")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        help="rows copied (and deleted from the source) per transaction (default 1000)",
    )


def run_move(args: argparse.Namespace) -> int:
    source = make_connector(args.source, parse_url(args.source)["OPTIONS"])
    target = make_connector(args.target, parse_url(args.target)["OPTIONS"], create=True)
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
        raise CommandError(f"refused: {exc}", EXIT_FAILURE) from None
    print(
        f"moved {moved} task(s) from {source.describe()} to {target.describe()}"
        + (" (source kept)" if args.no_destroy else "")
    )
    return 0


COMMANDS = [
    Command(
        "migrate",
        "create or upgrade the database tables (creates a missing SQLite file, not a directory)",
        add_backend_argument,
        run_migrate,
    ),
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
