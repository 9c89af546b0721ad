"""``manage.py prune_db_task_results``: django-tasks-db 0.13's flags and validation (argparse
errors, exit status 2), taskyard's prune."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.command import MAX_DURATION_DAYS


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    if value > MAX_DURATION_DAYS:  # older than that overflows the date: nothing to prune
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DURATION_DAYS}, got {value}")
    return value


class Command(BaseCommand):
    help = "Prune finished database task results (taskyard)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from taskyard.contrib.django.management.commands._base import database_backend_alias

        parser.add_argument("--backend", default="default", type=database_backend_alias)
        parser.add_argument(
            "--queue-name",
            default="default",
            help="queues to prune, comma-separated, or * (default: default)",
        )
        parser.add_argument("--min-age-days", type=_positive, default=14)
        parser.add_argument(
            "--failed-min-age-days",
            type=_positive,
            default=None,
            help="age of FAILED results to prune (default: --min-age-days)",
        )
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.backends.database.backend import database_backend
        from taskyard.backends.database.worker_ops import QueueOps
        from taskyard.contrib.django.settings import ensure_configured
        from taskyard.exceptions import InvalidTaskBackend
        from taskyard.tasks.execution import utcnow

        ensure_configured()
        try:
            ops = QueueOps(database_backend(options["backend"]))
        except InvalidTaskBackend as exc:
            raise CommandError(str(exc)) from exc
        queue = options["queue_name"].strip()
        queues = None if queue == "*" else [q.strip() for q in queue.split(",") if q.strip()]
        failed_days = options["failed_min_age_days"]
        if failed_days is None:
            failed_days = options["min_age_days"]
        now = utcnow()
        total = 0
        verb = "Would delete" if options["dry_run"] else "Deleted"
        for statuses, days in (
            (["SUCCESSFUL", "CANCELLED"], options["min_age_days"]),
            (["FAILED"], failed_days),
        ):
            count = ops.prune(
                now - timedelta(days=days), statuses, queues, 1000, options["dry_run"]
            )
            total += count
            self.stdout.write(
                f"{verb} {count} {'/'.join(statuses)} task result(s) older than {days} day(s)"
            )
        self.stdout.write(f"{verb} {total} task result(s)")  # django-tasks-db's summary line
