"""``manage.py crontask``: run taskyard's cron scheduler (django-crontask's command name)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.contrib.django.management.commands._base import autodiscover_tasks, setup_logging


class Command(BaseCommand):
    help = "Run the cron scheduler for schedules declared with @cron (taskyard)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--no-task-loading",
            action="store_true",
            help="don't import the tasks modules of installed apps",
        )
        parser.add_argument(
            "--no-heartbeat",
            action="store_true",
            help="accepted for django-crontask compatibility: taskyard's "
            "scheduler has no heartbeat task",
        )
        parser.add_argument("--list", action="store_true", help="print schedules and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskyard.cli import main
        from taskyard.contrib.django.settings import ensure_configured

        setup_logging(options["verbosity"])
        ensure_configured()
        if not options["no_task_loading"]:
            autodiscover_tasks()
        argv = ["cron"] + (["--list"] if options["list"] else [])
        code = main(argv, configured=True, prog="manage.py crontask")
        if code:
            raise CommandError(f"exit status {code}", returncode=code)
