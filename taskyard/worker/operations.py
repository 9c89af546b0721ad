"""Operations on a Database-backend queue: the status table, durations, moving data.

Shared by the ``taskyard`` commands and the Django management commands.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from taskyard.backends.database.connectors import Connector, dumps
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.command import MAX_DURATION_DAYS
from taskyard.exceptions import TaskyardError
from taskyard.worker.probes import live_workers

logger = logging.getLogger("taskyard.worker")

STATUSES = ("READY", "RUNNING", "SUCCESSFUL", "FAILED", "CANCELLED")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


DURATION_FORMS = "a number and a unit: 45s, 30m, 12h, 7d or 2w"


class DurationError(ValueError, argparse.ArgumentTypeError):
    """Not a duration; the message lists the accepted forms (argparse shows it as is)."""


def parse_duration(text: str) -> timedelta:
    """``45s``, ``30m``, ``12h``, ``7d``, ``2w`` -> a timedelta. The unit is required: a bare
    number is refused (``--older-than 7`` might mean seconds or days)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text), re.IGNORECASE)
    if not match:
        raise DurationError(f"{text!r} is not a duration: give {DURATION_FORMS}")
    if not match.group(2):
        raise DurationError(
            f"{text!r} has no unit: give {DURATION_FORMS} (for example {match.group(1)}d for "
            f"{match.group(1)} days)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds > MAX_DURATION_DAYS * 86400:
        # "now - 99999999999d" overflows datetime: refuse it with the range, not a traceback
        raise DurationError(f"{text!r} is too long: at most {MAX_DURATION_DAYS}d (100 years)")
    return timedelta(seconds=seconds)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


class StatusSource(Protocol):
    """What ``status_report`` reads from a backend other than the Database (Redis)."""

    def counts(self) -> dict[tuple[str, str], int]: ...
    def stats(self) -> dict[str, Any]: ...
    def workers(self) -> list[dict[str, Any]]: ...
    def live_worker_ids(self) -> set[str]: ...
    def extra_lines(self) -> list[str]: ...


def status_report(ops: QueueOps | StatusSource) -> str:
    """The ``taskyard status`` table: counts per queue and status, oldest waiting, workers
    (the same table for the Database and the Redis backend)."""
    counts = ops.counts()
    stats = ops.stats()
    queues = sorted({q for q, _ in counts} | set(stats))
    header = f"{'queue':<20}" + "".join(f"{s:>12}" for s in STATUSES) + f"{'oldest wait':>14}"
    lines = [header, "-" * len(header)]
    totals = dict.fromkeys(STATUSES, 0)
    for queue in queues:
        row = f"{queue:<20}"
        for status in STATUSES:
            n = counts.get((queue, status), 0)
            totals[status] += n
            row += f"{n:>12}"
        oldest = stats[queue].oldest_waiting_seconds if queue in stats else None
        lines.append(row + f"{_age(oldest):>14}")
    lines.append(f"{'(all)':<20}" + "".join(f"{totals[s]:>12}" for s in STATUSES))
    workers = ops.workers()
    if isinstance(ops, QueueOps):
        live = {w["worker_id"] for w in live_workers(ops)}
    else:
        live = ops.live_worker_ids()
    lines.append("")
    lines.append(f"workers: {len(live)} live, {len(workers) - len(live)} not heartbeating")
    for w in workers:
        mark = "live" if w["worker_id"] in live else "stale"
        lines.append(
            f"  {w['worker_id']:<32} {mark:<6} {w['state']:<9} queues={w['queues']:<16} "
            f"threads={w['threads']:<3} processed={w['processed']:<8} failed={w['failed']:<6} "
            f"seen {_age(w['seen_ago'])} ago"
        )
    lines.extend(_paused_schedules(ops) if isinstance(ops, QueueOps) else ops.extra_lines())
    return "\n".join(lines)


def _paused_schedules(ops: QueueOps) -> list[str]:
    """Lines for the cron schedules paused in this database (schema 2 and later)."""
    if ops.backend.schema_status()[0] < 2:
        return []
    rows = ops.c.run_retrying("cron_paused", {})
    if not rows:
        return []
    lines = ["", f"cron: {len(rows)} schedule(s) paused (resume: taskyard cron --resume NAME)"]
    for row in rows:
        since = ops.c.parse_time(row["paused_at"])
        when = f"{since:%Y-%m-%d %H:%M:%S} UTC" if since is not None else "?"
        lines.append(f"  {row['schedule']:<32} PAUSED since {when}: {row['reason']}")
    return lines


# -- moving data between databases -----------------------------------------------------------------

MOVE_MARKER = "move_from"
_JSON_COLUMNS = (
    "args",
    "kwargs",
    "options",
    "worker_ids",
    "errors",
    "return_value",
    "progress",
    "qualifiers",
)
_TIME_COLUMNS = (
    "enqueued_at",
    "run_after",
    "available_at",
    "started_at",
    "last_attempted_at",
    "finished_at",
    "lease_expires_at",
)


class MoveRefused(TaskyardError):
    """``move-data`` will not run: the reason says why and what to do."""


def _convert(row: dict[str, Any], source: Connector, target: Connector) -> dict[str, Any]:
    out = dict(row)
    out["id"] = str(row["id"])
    for name in ("depends_on", "waiting_on"):
        out[name] = None if row[name] is None else str(row[name])
    for name in _JSON_COLUMNS:
        out[name] = dumps(source.parse_json(row[name]))
    for name in _TIME_COLUMNS:
        out[name] = target.time(source.parse_time(row[name]))
    for name in ("cancel_requested", "has_dependents", "is_async"):
        out[name] = bool(row[name])
    return out


def move_data(
    source: Connector,
    target: Connector,
    *,
    destroy: bool = True,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy every task row from ``source`` to ``target`` in batches (and delete it from
    ``source`` unless ``destroy`` is false). Returns the number of rows moved.

    Refuses a target that already holds tasks, unless it carries the marker of an interrupted
    move from this same source (then the move resumes: rows already copied are skipped). Refuses
    while workers hold live leases in the source.
    """
    fingerprint = source.describe()
    marker = target.run("meta_get", {"key": MOVE_MARKER})
    resuming = bool(marker) and marker[0]["value"] == fingerprint
    if int(target.run("count_tasks")[0]["n"]) and not resuming:
        raise MoveRefused(
            f"the target {target.describe()} already holds task data; move-data only fills an "
            "empty queue"
        )
    live = int(source.run("count_live_leases", {"now": source.time(_now())})[0]["n"])
    if live:
        raise MoveRefused(
            f"{live} task(s) are running with live leases in {fingerprint}: stop the workers first"
        )
    target.run("meta_set", {"key": MOVE_MARKER, "value": fingerprint})
    moved = 0
    after = "00000000-0000-0000-0000-000000000000"
    while True:
        rows = source.run("export_batch", {"after": after, "batch": batch_size})
        if not rows:
            break
        with target.transaction():
            for row in rows:
                target.run("import_task", _convert(row, source, target))
        ids = [str(row["id"]) for row in rows]
        if destroy:
            with source.transaction():
                source.run("delete_ids", {"ids": source.ids(ids)})
        after = ids[-1]
        moved += len(rows)
        if progress is not None:
            progress(moved)
    target.run("meta_delete", {"key": MOVE_MARKER})
    logger.info("moved %d task row(s) from %s to %s", moved, fingerprint, target.describe())
    return moved


def _now() -> Any:
    from taskyard.tasks.execution import utcnow

    return utcnow()
