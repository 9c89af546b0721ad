"""``manage.py taskyard ...``: the full taskyard command line, configured from Django."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskyard.contrib.django.management.commands._base import autodiscover_tasks


class Command(BaseCommand):
    help = (
        "taskyard's command line (worker, status, health, prune, cron, ...) with Django's settings"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "argv",
            nargs=argparse.REMAINDER,
            help="a taskyard command and its arguments, e.g. worker --threads 8",
        )

    def handle(self, *args: Any, argv: list[str], **options: Any) -> None:
        from taskyard.cli import main
        from taskyard.contrib.django.settings import ensure_configured

        ensure_configured()
        autodiscover_tasks()
        code = main(argv or ["--help"], configured=True, prog="manage.py taskyard")
        if code:
            raise CommandError(f"exit status {code}", returncode=code)
