"""``taskyard show ID`` and ``taskyard list``: one task in full, or the newest tasks in a table.

Both read the Database and the Redis backends through a ``TaskReader``
(``taskyard.tasks.records``), never importing the tasks' modules, and print text or, with
``--json``, JSON. Under Django they are ``manage.py taskyard show`` / ``list``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.base import Backend
from taskyard.backends.database.backend import DatabaseBackend
from taskyard.command import Command, CommandError, positive_int
from taskyard.config import backends
from taskyard.tasks.records import STATUSES, TaskReader, TaskRecord


def reader_for(backend: Backend) -> TaskReader:
    """The ``TaskReader`` of a Database or Redis backend (``CommandError`` for the others)."""
    if isinstance(backend, DatabaseBackend):
        from taskyard.backends.database.inspect import DatabaseReader

        backend.open_existing()
        return DatabaseReader(backend)
    try:
        from taskyard.backends.redis.backend import RedisBackend
    except ImportError:  # pragma: no cover - without the redis extra
        RedisBackend = None  # type: ignore[assignment,misc]  # noqa: N806
    if RedisBackend is not None and isinstance(backend, RedisBackend):
        from taskyard.backends.redis.inspect import RedisReader

        return RedisReader(backend)
    raise CommandError(
        f"backend {backend.alias!r} is {type(backend).__name__}, which keeps results only in "
        "the process that enqueued them: show and list read the Database and Redis backends"
    )


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _value(value: Any, width: int = 0) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    if width and len(text) > width:
        return text[: width - 1] + "…"
    return text


def format_record(record: TaskRecord) -> str:
    """The text of ``taskyard show``."""
    lines = [f"task {record.id}  {record.status}"]

    def add(label: str, text: str) -> None:
        lines.append(f"  {label + ':':<14}{text}")

    add("task", record.task_path)
    add("queue", f"{record.queue_name}   priority {record.priority}")
    add("backend", f"{record.backend}   {record.store}")
    add("enqueued", f"{_when(record.enqueued_at)} by {record.enqueued_by or '?'}")
    if record.run_after is not None:
        add("run after", _when(record.run_after))
    add("arguments", f"args {_value(record.args)}  kwargs {_value(record.kwargs)}")
    add("started", _when(record.started_at))
    add("finished", _when(record.finished_at))
    if record.progress is not None:
        progress = record.progress
        total = f"/{progress.total:g}" if progress.total is not None else ""
        message = f" ({progress.message})" if progress.message else ""
        add("progress", f"{progress.current:g}{total}{message}")
    if record.has_return_value:
        add("return value", _value(record.return_value))
    if record.depends_on:
        waiting = "   (waiting for it)" if record.waiting_on else ""
        add("depends on", f"{record.depends_on}{waiting}")
    for dependent in record.dependents:
        add("dependent", f"{dependent.id}  {dependent.status:<10} {dependent.task_path}")
    if record.cancel_requested:
        add("cancel", "requested")
    for key, value in sorted(record.details.items()):
        add(key.replace("_", " "), value if isinstance(value, str) else _value(value))
    limit = f" of {record.max_attempts}" if record.max_attempts else ""
    add("attempts", f"{len(record.attempts)}{limit}")
    for attempt in record.attempts:
        times = ""
        if attempt.started_at is not None:
            times += f"  started {_when(attempt.started_at)}"
        if attempt.finished_at is not None:
            times += f"  ended {_when(attempt.finished_at)}"
        lines.append(
            f"    #{attempt.number} {attempt.outcome:<11} on {attempt.worker_id or '?'}{times}"
        )
        if attempt.error is not None:
            lines.append(f"       {attempt.error.message}")
            lines.append(textwrap.indent(attempt.error.traceback.rstrip(), "         | "))
    for error in record.other_errors:
        lines.append(f"  {'error:':<14}{error.message}")
        lines.append(textwrap.indent(error.traceback.rstrip(), "         | "))
    return "\n".join(lines)


def format_table(records: Sequence[TaskRecord]) -> str:
    """The table of ``taskyard list``, newest first."""
    header = (
        f"{'id':<36}  {'status':<10}  {'queue':<12} {'prio':>4} {'tries':>5}  "
        f"{'enqueued':<23}  task / last error"
    )
    lines = [header, "-" * len(header)]
    for r in records:
        errors = r.errors
        tail = r.task_path
        if r.status in ("FAILED", "CANCELLED") and errors:
            tail += f"  ({errors[-1].message})"
        lines.append(
            f"{r.id:<36}  {r.status:<10}  {r.queue_name:<12} {r.priority:>4} "
            f"{len(r.attempts):>5}  {_when(r.enqueued_at):<23}  {tail}"
        )
    lines.append(f"{len(records)} task(s)")
    return "\n".join(lines)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="default",
        metavar="ALIAS",
        help="settings alias of the Database or Redis backend (default: default)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the task's result id")
    _add_backend(parser)


def _run_show(args: argparse.Namespace) -> int:
    record = reader_for(backends[args.backend]).show(args.id)
    print(
        json.dumps(record.to_json(), indent=2, default=str) if args.json else format_record(record)
    )
    return 0


def _status(text: str) -> str:
    status = text.strip().upper()
    if status not in STATUSES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a status: use {', '.join(s.lower() for s in STATUSES)}"
        )
    return status


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        type=_status,
        default=None,
        help="only tasks in this status: ready, running, successful, failed or cancelled",
    )
    parser.add_argument("--queue", default=None, metavar="QUEUE", help="only this queue")
    parser.add_argument(
        "--task", default=None, metavar="PATH", help="only this task (module.function)"
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="at most N tasks, the newest first (default 20)",
    )
    _add_backend(parser)


def _run_list(args: argparse.Namespace) -> int:
    records = reader_for(backends[args.backend]).list_tasks(
        status=args.status, queue=args.queue, task=args.task, limit=args.limit
    )
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2, default=str))
    else:
        print(format_table(records))
    return 0


COMMANDS = [
    Command(
        "show",
        "one task in full: status, attempts with workers, errors and tracebacks, progress, "
        "return value, dependencies",
        _add_show,
        _run_show,
    ),
    Command(
        "list",
        "the newest tasks, filtered by --status, --queue, --task (Database and Redis backends)",
        _add_list,
        _run_list,
    ),
]
